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
kill "$pid"
wait "$pid"
status=$?
pid=
[ $status -eq 0 ] || { echo "expected exit 0 on SIGTERM, saw $status"; exit 1; }
exit 0
