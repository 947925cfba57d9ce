#!/usr/bin/env bash
# opendkim-setup.sh — Debian's opendkim as a signing milter for the private Postfix instance, so
# Postfix signs the bench's mail like Postern does (the like-for-like reference for signed mode).
#
#   signs    : From: *@bench.test with selector "bench", relaxed/relaxed, From over-signed
#   key      : RSA-2048 (ALG=rsa, default) or Ed25519 (ALG=ed25519), made by `config`
#   listens  : inet 127.0.0.1:$MILTER_PORT (Postfix: smtpd_milters = inet:127.0.0.1:$MILTER_PORT,
#              which postfix-setup.sh config adds when MILTER_PORT is set)
#   files    : $DKIM_DIR (${TMPDIR:-/tmp}/relay-bench/opendkim): conf, KeyTable, SigningTable, key, pid
#
# Usage: opendkim-setup.sh install|config|start|stop|pid
# Env: MILTER_PORT (12891), ALG (rsa|ed25519), DKIM_DIR
set -euo pipefail

DKIM_DIR=${DKIM_DIR:-${TMPDIR:-/tmp}/relay-bench/opendkim}
MILTER_PORT=${MILTER_PORT:-12891}
ALG=${ALG:-rsa}

install_pkgs() {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q opendkim opendkim-tools
    # The package's own instance (if the init system started one) is never used.
}

write_config() {
    mkdir -p "$DKIM_DIR"
    chmod 700 "$DKIM_DIR"
    rm -f "$DKIM_DIR"/bench.private "$DKIM_DIR"/bench.txt
    case $ALG in
        rsa) opendkim-genkey -b 2048 -h sha256 -d bench.test -s bench -D "$DKIM_DIR" ;;
        ed25519) openssl genpkey -algorithm ed25519 -out "$DKIM_DIR/bench.private" ;;
        *) echo "opendkim-setup: ALG is rsa or ed25519" >&2; exit 2 ;;
    esac
    chmod 600 "$DKIM_DIR/bench.private"
    echo "bench._domainkey.bench.test bench.test:bench:$DKIM_DIR/bench.private" > "$DKIM_DIR/KeyTable"
    echo "*@bench.test bench._domainkey.bench.test" > "$DKIM_DIR/SigningTable"
    cat > "$DKIM_DIR/opendkim.conf" <<CONF
# ---- signing milter for the benchmark's Postfix (written by opendkim-setup.sh) ----
Syslog                  no
Mode                    s
Canonicalization        relaxed/relaxed
OversignHeaders         From
KeyTable                file:$DKIM_DIR/KeyTable
SigningTable            refile:$DKIM_DIR/SigningTable
InternalHosts           127.0.0.0/8
Socket                  inet:$MILTER_PORT@127.0.0.1
PidFile                 $DKIM_DIR/opendkim.pid
Background              yes
# the key sits under ${TMPDIR:-/tmp}, which other users may write: opendkim would refuse it
RequireSafeKeys         no
CONF
}

case "${1:-}" in
    install) install_pkgs ;;
    config)  write_config ;;
    start)
        opendkim -x "$DKIM_DIR/opendkim.conf"
        for _ in {1..100}; do [ -s "$DKIM_DIR/opendkim.pid" ] && break; sleep 0.05; done ;;
    stop)
        if [ -s "$DKIM_DIR/opendkim.pid" ]; then
            pid=$(head -1 "$DKIM_DIR/opendkim.pid" | tr -dc 0-9)
            [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
            for _ in {1..100}; do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
            rm -f "$DKIM_DIR/opendkim.pid"
        fi ;;
    pid)     head -1 "$DKIM_DIR/opendkim.pid" | tr -dc 0-9 ;;
    *) echo "usage: $0 install|config|start|stop|pid" >&2; exit 2 ;;
esac
