#!/bin/sh
# The audit verifier links no signing code (DESIGN.md "Audit log", STYLE.md
# habit 7): neither libsodium's signing functions nor our note_sign /
# sig_sign / cert_sign / dir_encode_sign may appear in valise-audit, as a
# definition or an import. The verify function must be there (the check sees
# the symbols at all).
bin="$1"
syms=$(nm "$bin" 2>/dev/null; nm -D "$bin" 2>/dev/null)
if ! printf '%s\n' "$syms" | grep -q 'crypto_sign_verify_detached'; then
    echo "expected crypto_sign_verify_detached in $bin: nm output unusable" >&2
    exit 1
fi
bad=$(printf '%s\n' "$syms" | grep -E '(crypto_sign_detached|crypto_sign$|crypto_sign_ed25519_detached|crypto_sign_keypair|crypto_sign_seed_keypair|note_sign|note_verifier_format|sig_sign|cert_sign|dir_encode_sign|request_encode_sign)' )
if [ -n "$bad" ]; then
    echo "valise-audit links signing code:" >&2
    printf '%s\n' "$bad" >&2
    exit 1
fi
echo "no signing symbol in $bin"
