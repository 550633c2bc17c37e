# scripts/lib.sh: what scripts/test, scripts/demo and bench/run share.
#
# Sourced, not run.  Installs what is missing from Debian's archive, builds
# and installs lockctl, and runs commands as the unprivileged user that owns
# the scratch servers (PostgreSQL refuses to run as root).

set -euo pipefail

LOCKCTL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_MAJOR=${PG_MAJOR:-15}
# PG_CONFIG may point at a private copy of the server (scripts/private-pg),
# so that several checkouts on one machine never install over each other.
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/$PG_MAJOR/bin/pg_config}
export PG_CONFIG
PG_BINDIR=$(dirname "$PG_CONFIG")
# Debian's python3 and its packages, whatever else is first on PATH.
PYTHON=/usr/bin/python3

# Everything the build, the tests, the demo, the examples and the benchmarks
# need from Debian's archive.  A fresh bookworm machine has none of it.
LOCKCTL_DEB_PACKAGES=(
    build-essential
    postgresql-$PG_MAJOR
    postgresql-server-dev-$PG_MAJOR
    postgresql-contrib
    libipc-run-perl
    pgbouncer
    python3
    python3-psycopg
    nodejs
    npm
    util-linux
    procps
)

lockctl_log() { printf '\n== %s\n' "$*"; }
lockctl_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Run a command as root: directly when we are root, through sudo otherwise.
lockctl_as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        lockctl_die "need root (or sudo) to run: $*"
    fi
}

# Install whatever Debian packages are missing; apt-get only runs when
# something is.
lockctl_install_deps() {
    local missing=() p
    for p in "${LOCKCTL_DEB_PACKAGES[@]}"; do
        # A machine may already have Node.js and npm from elsewhere (some
        # builds of nodejs ship npm and conflict with Debian's npm package).
        case $p in nodejs|npm) command -v "${p/nodejs/node}" >/dev/null 2>&1 && continue ;; esac
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        lockctl_log "installing from Debian's archive: ${missing[*]}"
        lockctl_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        lockctl_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            "${missing[@]}" >/dev/null
    fi
    [ -x "$PG_CONFIG" ] || lockctl_die "$PG_CONFIG not found after installing postgresql-server-dev-$PG_MAJOR"
}

# The user that runs scratch servers: the caller itself unless that is root.
lockctl_server_user() {
    if [ "$(id -u)" = 0 ]; then echo postgres; else id -un; fi
}

# Run a command as the server user, with the server binaries first on PATH.
lockctl_as_server_user() {
    local u
    u=$(lockctl_server_user)
    if [ "$(id -un)" = "$u" ]; then
        env PATH="$PG_BINDIR:$PATH" "$@"
    else
        runuser -u "$u" -- env PATH="$PG_BINDIR:$PATH" HOME=/tmp "$@"
    fi
}

# Build with warnings as errors and install into the server's directories.
# A lock keeps two checkouts on one machine from installing over each other
# while the other is testing.
lockctl_build_install() {
    lockctl_log "building lockctl (warnings are errors)"
    make -C "$LOCKCTL_ROOT" -s clean >/dev/null
    make -C "$LOCKCTL_ROOT" -s
    lockctl_log "installing into $($PG_CONFIG --pkglibdir) and $($PG_CONFIG --sharedir)/extension"
    lockctl_as_root make -C "$LOCKCTL_ROOT" -s install PG_CONFIG="$PG_CONFIG"
}

# One installation, one test run at a time: a server started by one run
# would otherwise load a library that another run installed after it.
LOCKCTL_LOCKFILE=/tmp/lockctl-install.$(echo "$PG_CONFIG" | cksum | cut -d' ' -f1).lock
