#!/bin/sh
# tls.sh RELAY MKPKI - valise-relay serves wss:// and https:// with --tls-cert/--tls-key
# and nothing in plain text on that port. Skips (77) without the openssl and curl tools.
set -u
relay=$1
mkpki=$2
command -v openssl >/dev/null 2>&1 || exit 77
command -v curl >/dev/null 2>&1 || exit 77
dir=$("$mkpki") || { echo "cannot make a test organisation"; exit 1; }
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -keyout "$dir/key.pem" \
    -out "$dir/cert.pem" -days 1 -nodes -subj /CN=localhost >/dev/null 2>&1 || exit 77
"$relay" --data "$dir/data" --org-pub "$dir/org.pub" --directory "$dir/directory" \
    --listen 127.0.0.1:0 --port-file "$dir/port" --relay-cert "$dir/relay.cert" --tls-cert "$dir/cert.pem" \
    --tls-key "$dir/key.pem" 2>"$dir/log" &
pid=$!
i=0
while [ ! -s "$dir/port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
port=$(cat "$dir/port") || { echo "relay did not start:"; cat "$dir/log"; exit 1; }
body=$(curl -sk --max-time 5 "https://127.0.0.1:$port/healthz")
[ "$body" = "ok" ] || { echo "expected ok over https, saw '$body'"; cat "$dir/log"; exit 1; }
if curl -s --max-time 5 "http://127.0.0.1:$port/healthz" | grep -q ok; then
    echo "expected no plain-text answer on the TLS port"; exit 1
fi
# SIGHUP reloads the certificate and key (issue 15 item 5): new handshakes get the new
# certificate, a connection opened before keeps working, the process is the same.
fp() { echo | openssl s_client -connect "127.0.0.1:$port" 2>/dev/null |
       openssl x509 -noout -fingerprint -sha256 2>/dev/null; }
old=$(fp)
[ -n "$old" ] || { echo "cannot read the served certificate"; exit 1; }
( sleep 2; printf 'GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n'; sleep 2 ) |
    openssl s_client -quiet -connect "127.0.0.1:$port" >"$dir/early" 2>/dev/null &
early=$!
sleep 0.5
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -keyout "$dir/key2.pem" \
    -out "$dir/cert2.pem" -days 1 -nodes -subj /CN=localhost >/dev/null 2>&1 || exit 77
cp "$dir/key2.pem" "$dir/key.pem" && cp "$dir/cert2.pem" "$dir/cert.pem"
kill -HUP "$pid"
i=0
while ! grep -q "TLS certificate .* reloaded" "$dir/log" && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
grep -q "TLS certificate .* reloaded" "$dir/log" || { echo "no reload line:"; cat "$dir/log"; exit 1; }
new=$(fp)
[ -n "$new" ] && [ "$new" != "$old" ] || { echo "expected a new certificate after SIGHUP, saw '$new'"; exit 1; }
wait "$early"
grep -q '^ok' "$dir/early" || { echo "the connection opened before the reload did not get its answer:"; cat "$dir/early"; exit 1; }
kill -0 "$pid" || { echo "the relay exited on SIGHUP"; exit 1; }
# a key that does not match: refused, the previous pair kept
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -keyout "$dir/key3.pem" \
    -out "$dir/cert3.pem" -days 1 -nodes -subj /CN=localhost >/dev/null 2>&1 || exit 77
cp "$dir/key3.pem" "$dir/key.pem"
kill -HUP "$pid"
i=0
while ! grep -q "kept the previous certificate" "$dir/log" && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
grep -q "kept the previous certificate" "$dir/log" || { echo "no refusal line:"; cat "$dir/log"; exit 1; }
[ "$(fp)" = "$new" ] || { echo "a bad key replaced the certificate"; exit 1; }
kill "$pid"
wait "$pid"
status=$?
pid=
[ $status -eq 0 ] || { echo "expected exit 0 on SIGTERM, saw $status"; exit 1; }
exit 0
