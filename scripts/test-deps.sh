#!/usr/bin/env bash
# Installs what the provider tests need to start throwaway servers:
# PostgreSQL (initdb, postgres, pg_ctl, psql), MariaDB (mariadb-install-db,
# mariadbd, mariadb), Redis (redis-server, redis-cli), OpenSSH's server
# (sshd, for the SSH tunnel tests), a C compiler and
# protobuf-c (protoc-c and its runtime) for the C example plugin; and what
# other tests run: promtool (Debian's prometheus), Node.js with npm, and
# Chromium for the hosted forms' browser tests (npm packages are installed
# by tests/browser/run.sh into the target directory).
# Idempotent: on a machine that has them all it changes nothing.
set -euo pipefail

# PostgreSQL's server binaries live outside PATH on Debian.
have() {
  command -v "$1" >/dev/null 2>&1 && return 0
  compgen -G "/usr/lib/postgresql/*/bin/$1" >/dev/null 2>&1 && return 0
  [ -x "/usr/sbin/$1" ]
}

missing=()
have initdb && have postgres && have pg_ctl && have psql || missing+=(postgresql postgresql-client)
have mariadb-install-db && have mariadbd && have mariadb || missing+=(mariadb-server mariadb-client)
have redis-server && have redis-cli || missing+=(redis-server redis-tools)
have cc || missing+=(gcc libc6-dev)
have sshd && have ssh-keygen || missing+=(openssh-server openssh-client)
have setpriv || missing+=(util-linux)
# promtool checks the /metrics text (tests/e2e/metrics.rs); Node.js and npm
# run examples/node (tests/e2e/node.rs).
have promtool || missing+=(prometheus)
have node && have npm || missing+=(nodejs npm)
have chromium || missing+=(chromium)
# The C example plugin is built on protobuf-c's generated code (protoc-c).
have protoc-c && [ -e /usr/include/protobuf-c/protobuf-c.h ] || missing+=(protobuf-c-compiler libprotobuf-c-dev)

if [ "${#missing[@]}" -eq 0 ]; then
  echo "test-deps: PostgreSQL, MariaDB, Redis, sshd, cc, promtool, Node.js, Chromium and protobuf-c are installed; nothing to do"
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  sudo=(sudo)
fi
echo "test-deps: installing ${missing[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
# The packages start system-wide services; the tests start their own servers.
for service in postgresql mariadb redis-server prometheus prometheus-node-exporter ssh; do
  "${sudo[@]}" service "$service" stop >/dev/null 2>&1 || true
done
echo "test-deps: installed ${missing[*]}"
