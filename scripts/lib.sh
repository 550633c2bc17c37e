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

# lockctl_scratch_start DATADIR PORT [CONF-LINE...]: initdb (once) and start
# a scratch server as the server user, with lockctl preloaded, listening on
# 127.0.0.1:PORT and on a socket in DATADIR.  Extra lines go to its
# postgresql.conf.  A server already running in DATADIR is reused.
lockctl_scratch_start() {
    local dir=$1 port=$2 line
    shift 2
    if [ ! -f "$dir/PG_VERSION" ]; then
        mkdir -p "$dir"
        [ "$(id -u)" = 0 ] && chown "$(lockctl_server_user)" "$dir"
        lockctl_as_server_user initdb -D "$dir" -U postgres -A trust --no-sync >/dev/null
        {
            echo "shared_preload_libraries = 'lockctl'"
            echo "listen_addresses = '127.0.0.1'"
            echo "port = $port"
            echo "unix_socket_directories = '$dir'"
            echo "max_connections = 200"
            echo "shared_buffers = '256MB'"
            echo "max_worker_processes = 16"
            for line in "$@"; do echo "$line"; done
        } | lockctl_as_server_user tee -a "$dir/postgresql.conf" >/dev/null
    fi
    if lockctl_as_server_user pg_ctl -D "$dir" status >/dev/null 2>&1; then
        # Running: restart so that it loads the library just installed.
        lockctl_as_server_user pg_ctl -D "$dir" -w -m fast restart -l "$dir/server.log" >/dev/null
    else
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            lockctl_die "port $port is taken by another program; choose another with LOCKCTL_PORT"
        fi
        lockctl_as_server_user pg_ctl -D "$dir" -w -t 60 start -l "$dir/server.log" >/dev/null ||
            { tail -20 "$dir/server.log" >&2; lockctl_die "the scratch server in $dir did not start"; }
    fi
}

# lockctl_scratch_stop DATADIR: stop the scratch server in DATADIR, if any.
lockctl_scratch_stop() {
    [ -f "$1/PG_VERSION" ] || return 0
    lockctl_as_server_user pg_ctl -D "$1" -w -m fast stop >/dev/null 2>&1 || true
}
