#!/bin/sh
# packages.sh BUILD_DIR SOURCE_DIR - the Debian packages (issue 15 items 1-3):
# cpack builds the four .deb files; each is unpacked into a clean root
# (dpkg -x: a full install needs root and would change this machine); their
# control files, man pages (against the installed programs' --help), systemd
# units (systemd-analyze verify --root) and the walk-through
# (scripts/demo.sh with VALISE_BIN_DIR) run from the installed paths.
set -u
build=$1
src=$2
t=$(mktemp -d /tmp/valise-pkgtest.XXXXXX)
trap 'rm -rf "$t"' EXIT
fail() { echo "packages: $*"; exit 1; }

cpack --config "$build/CPackConfig.cmake" -G DEB -B "$t/out" >"$t/cpack.log" 2>&1 ||
    { cat "$t/cpack.log"; fail "cpack failed"; }
root=$t/root
mkdir -p "$root"
for p in valise valise-keys valise-relay valise-audit; do
    deb=$(ls "$t/out/${p}_"*.deb 2>/dev/null) || fail "no package $p"
    [ "$(dpkg-deb -f "$deb" Package)" = "$p" ] || fail "$deb is not package $p"
    dpkg-deb -x "$deb" "$root" || fail "cannot unpack $deb"
    [ -x "$root/usr/bin/$p" ] || fail "$p does not install /usr/bin/$p"
done
# the relay package: its unit, configuration, system user and directories
for f in usr/lib/systemd/system/valise-relay.service usr/lib/systemd/system/valise-relay-backup.timer \
         etc/valise/relay.conf usr/lib/systemd/user/valise-desk.service usr/share/valise/desk/README; do
    [ -f "$root/$f" ] || fail "/$f not installed"
done
dpkg-deb -e "$t/out/valise-relay_"*.deb "$t/ctl" || fail "no control area"
grep -q 'adduser --system' "$t/ctl/postinst" || fail "postinst makes no system user"
grep -q '/var/lib/valise' "$t/ctl/postinst" || fail "postinst makes no /var/lib/valise"
grep -qx '/etc/valise/relay.conf' "$t/ctl/conffiles" || fail "relay.conf is not a conffile"
dpkg-deb -f "$t/out/valise-relay_"*.deb Depends | grep -q liblmdb || fail "no shared library dependencies"
# man pages, installed, agree with the installed programs' --help
for m in valise:1 valise-keys:8 valise-relay:8 valise-audit:1; do
    p=${m%%:*}; s=${m##*:}
    [ -f "$root/usr/share/man/man$s/$p.$s" ] || fail "no man page $p($s)"
    python3 "$src/tests/packaging/mancheck.py" "$root/usr/bin/$p" "$root/usr/share/man/man$s/$p.$s" ||
        fail "$p($s) and --help disagree"
    if command -v man >/dev/null 2>&1; then
        MANWIDTH=80 man -l "$root/usr/share/man/man$s/$p.$s" 2>"$t/man.err" | grep -q "^NAME" ||
            { cat "$t/man.err"; fail "$p($s) does not render"; }
    fi
done
# systemd units: checked as installed, their programs pointed into the root
# (systemd-analyze verify wants the ExecStart binaries and the host's targets)
if command -v systemd-analyze >/dev/null 2>&1; then
    mkdir -p "$t/units"
    for u in system/valise-relay.service system/valise-relay-backup.service \
             system/valise-relay-backup.timer user/valise-desk.service; do
        sed "s|/usr/bin/|$root/usr/bin/|g" "$root/usr/lib/systemd/$u" >"$t/units/${u#*/}"
    done
    for u in valise-relay.service valise-relay-backup.service valise-relay-backup.timer valise-desk.service; do
        systemd-analyze verify --man=no "$t/units/$u" >"$t/verify" 2>&1 ||
            { cat "$t/verify"; fail "systemd-analyze verify $u"; }
        if grep -q . "$t/verify"; then
            cat "$t/verify"; fail "systemd-analyze verify $u warned"
        fi
    done
    systemd-analyze security --offline=yes "$t/units/valise-relay.service" >"$t/security" 2>&1 || true
    grep 'Overall exposure level' "$t/security" || true
else
    echo "packages: no systemd-analyze here; units not verified"
fi
# the walk-through, from the installed paths
if [ "${VALISE_LONG:-0}" = 1 ] || [ "${VALISE_PKG_DEMO:-1}" = 1 ]; then
    VALISE_BIN_DIR=$root/usr/bin VALISE_DEMO_DIR=$t/demo "$src/scripts/demo.sh" >"$t/demo.log" 2>&1 ||
        { tail -40 "$t/demo.log"; fail "the walk-through failed from the installed paths"; }
    grep -q "$root/usr/bin\|valise-keys" "$t/demo.log" || fail "the walk-through ran nothing"
fi
echo "packages: 4 packages built, installed into a clean root, man pages, units and walk-through ok"
