# scripts/lib.sh: what scripts/test, scripts/demo and bench/run share.
#
# Sourced, not run.  Installs what is missing from Debian's archive, builds
# and installs lockctl, and runs commands as the unprivileged user that owns
# the scratch servers (PostgreSQL refuses to run as root).

set -euo pipefail

LOCKCTL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

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

# apt-get as root, one at a time: two checkouts' scripts started together on
# a fresh machine would otherwise both install, and the second one fails on
# dpkg's lock.  flock queues our own calls; DPkg::Lock::Timeout waits for
# anyone else's (unattended-upgrades, a person at the console).
lockctl_apt() {
    lockctl_as_root env DEBIAN_FRONTEND=noninteractive \
        flock /var/tmp/lockctl-apt.lock \
        apt-get -o DPkg::Lock::Timeout=600 "$@"
}

# The PostgreSQL major that this machine's Debian archive offers: the one
# its "postgresql" metapackage depends on (15 on Debian 12, 17 on 13, 18 on
# unstable), or nothing when apt knows no such package.
lockctl_archive_major() {
    apt-cache depends postgresql 2>/dev/null |
        sed -n 's/^ *Depends: postgresql-\([0-9][0-9]*\)$/\1/p' | head -1
}

# The PostgreSQL major to build and test against (PG_MAJOR): the one given;
# else that of PG_CONFIG, when it is given (a private copy of the server,
# see scripts/private-pg); else the one the archive offers.  Its server and
# headers are installed from the archive if missing.
LOCKCTL_OWN_PG_CONFIG=${PG_CONFIG:+1}
if [ -n "${PG_MAJOR:-}" ]; then
    [[ $PG_MAJOR =~ ^[0-9]+$ ]] || lockctl_die "PG_MAJOR='$PG_MAJOR' is not a PostgreSQL major version (15, 17, 18, ...)"
elif [ -n "${PG_CONFIG:-}" ]; then
    [ -x "$PG_CONFIG" ] || lockctl_die "PG_CONFIG=$PG_CONFIG is not an executable pg_config"
    PG_MAJOR=$("$PG_CONFIG" --version | sed -n 's/^PostgreSQL \([0-9][0-9]*\).*/\1/p')
else
    PG_MAJOR=$(lockctl_archive_major)
    if [ -z "$PG_MAJOR" ]; then
        # A fresh machine may have no package lists yet.
        lockctl_log "reading the package lists of Debian's archive"
        lockctl_apt update -qq
        PG_MAJOR=$(lockctl_archive_major)
    fi
fi
[ -n "$PG_MAJOR" ] ||
    lockctl_die "cannot tell which PostgreSQL major this machine's Debian archive offers; set PG_MAJOR (e.g. PG_MAJOR=17)"
if [ -n "${PG_CONFIG:-}" ] && [ -x "$PG_CONFIG" ] &&
   [ "$("$PG_CONFIG" --version | sed -n 's/^PostgreSQL \([0-9][0-9]*\).*/\1/p')" != "$PG_MAJOR" ]; then
    lockctl_die "PG_CONFIG=$PG_CONFIG is not PostgreSQL $PG_MAJOR (PG_MAJOR); give one of them, or both alike"
fi
export PG_MAJOR
# PG_CONFIG may point at a private copy of the server (scripts/private-pg),
# so that several checkouts on one machine never install over each other.
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/$PG_MAJOR/bin/pg_config}
export PG_CONFIG
PG_BINDIR=$(dirname "$PG_CONFIG")
# Debian's python3 and its packages, whatever else is first on PATH.
PYTHON=/usr/bin/python3

# Everything the build, the tests, the demo, the examples and the benchmarks
# need from Debian's archive.  A fresh Debian machine has none of it.
# (postgresql-NN carries the contrib modules too.)  A PG_CONFIG given by
# the caller brings its own server and headers: a private copy, or a
# PostgreSQL built from source (a major that Debian does not ship).
# (What building the Debian packages needs is debian/control's
# Build-Depends: scripts/package installs it with apt-get build-dep.)
LOCKCTL_DEB_PACKAGES=(
    build-essential
    libipc-run-perl
    pgbouncer
    python3
    python3-psycopg
    python3-psycopg2
    python3-matplotlib
    python3-pip
    python3-setuptools
    python3-wheel
    python3-venv
    prometheus-postgres-exporter
    # the ORM matrix (scripts/orm-check): ORMs and drivers from the archive
    python3-sqlalchemy
    python3-django
    python3-asyncpg
    ruby-activerecord
    ruby-pg
    nodejs
    npm
    util-linux
    procps
    git
)
# The ORM matrix's Hibernate, and a JDK to run its check from source: only
# the orm phase needs Java, so only it installs these (scripts/test,
# scripts/orm-check), not the demo.
LOCKCTL_ORM_DEB_PACKAGES=(
    default-jdk-headless
    libhibernate3-java
    libjavassist-java
    libpostgresql-jdbc-java
    libslf4j-java
)
if [ -z "$LOCKCTL_OWN_PG_CONFIG" ]; then
    LOCKCTL_DEB_PACKAGES+=("postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR")
fi

# Install whatever Debian packages are missing; apt-get only runs when
# something is.  Without their Recommends: nothing here needs them, and on
# a minimal system they bring a mail server that may fail to configure.
lockctl_install_deps() {
    local wanted=() p
    for p in "${LOCKCTL_DEB_PACKAGES[@]}"; do
        # A machine may already have Node.js and npm from elsewhere (some
        # builds of nodejs ship npm and conflict with Debian's npm package).
        case $p in nodejs|npm) command -v "${p/nodejs/node}" >/dev/null 2>&1 && continue ;; esac
        wanted+=("$p")
    done
    lockctl_install_missing "${wanted[@]}"
    [ -x "$PG_CONFIG" ] || lockctl_die "$PG_CONFIG not found after installing postgresql-server-dev-$PG_MAJOR"
    [ -f "$("$PG_CONFIG" --pgxs)" ] || lockctl_die "$PG_CONFIG has no PGXS ($("$PG_CONFIG" --pgxs)): the server's development files are missing"
    lockctl_install_optional node-pg
}

# Install whichever of the named Debian packages are missing (apt-get only
# runs when one is): lockctl_install_deps' list, and what only some phases
# need (the ORM matrix's Java, the HA drill's Patroni).  Without their
# Recommends unless --with-recommends comes first.
lockctl_install_missing() {
    local missing=() p recommends=--no-install-recommends
    if [ "${1:-}" = --with-recommends ]; then recommends=; shift; fi
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    lockctl_log "installing from Debian's archive: ${missing[*]}"
    lockctl_apt update -qq
    # A package the archive does not have: say which, before apt-get fails.
    for p in "${missing[@]}"; do
        apt-cache show "$p" >/dev/null 2>&1 && continue
        case $p in
            postgresql-*-"$PG_MAJOR"|postgresql-"$PG_MAJOR")
                lockctl_die "this machine's Debian archive has no PostgreSQL $PG_MAJOR (it offers $(lockctl_archive_major)); unset PG_MAJOR, or choose that one" ;;
            *)  lockctl_die "this machine's Debian archive has no package $p" ;;
        esac
    done
    lockctl_apt install -y -qq ${recommends:+"$recommends"} \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}" >/dev/null
}

# Optional packages: installed where they can be, skipped with a note where
# they cannot.  node-pg is Debian's build of the Node.js driver, which the
# Node.js example falls back to when npm cannot fetch from its registry (a
# machine without the registry's TLS chain); a Node.js that is not Debian's
# cannot take Debian's node-* packages, and then npm is what it uses.
lockctl_install_optional() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' && continue
        [ -f "/var/tmp/lockctl-optional-$p.skip" ] && continue
        if ! lockctl_apt install -y -qq \
                --no-install-recommends "$p" >/dev/null 2>&1; then
            echo "note: optional Debian package $p cannot be installed on this machine; skipped"
            # Do not ask apt again on every run.
            lockctl_as_root touch "/var/tmp/lockctl-optional-$p.skip" 2>/dev/null || true
        fi
    done
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

# Build and install into the server's directories; warnings are errors
# when LOCKCTL_WERROR=1 (scripts/test and CI set it).  A lock keeps two
# checkouts on one machine from installing over each other while the other
# is testing.
lockctl_build_install() {
    if [ "${LOCKCTL_WERROR:-0}" = 1 ]; then
        lockctl_log "building lockctl (warnings are errors)"
    else
        lockctl_log "building lockctl"
    fi
    make -C "$LOCKCTL_ROOT" -s clean >/dev/null
    make -C "$LOCKCTL_ROOT" -s LOCKCTL_WERROR="${LOCKCTL_WERROR:-0}"
    lockctl_log "installing into $($PG_CONFIG --pkglibdir) and $($PG_CONFIG --sharedir)/extension"
    lockctl_as_root make -C "$LOCKCTL_ROOT" -s install PG_CONFIG="$PG_CONFIG"
}

# One installation, one test run at a time: a server started by one run
# would otherwise load a library that another run installed after it.
LOCKCTL_LOCKFILE=/tmp/lockctl-install.$(echo "$PG_CONFIG" | cksum | cut -d' ' -f1).lock

# ---------------------------------------------------------------------------
# Scratch servers: the one scripts/demo leaves running for you to explore,
# and the throw-away ones of the examples phase of scripts/test.
#
#   lockctl_scratch_start DATADIR PORT [CONF-LINE...]   create (initdb) and
#       start a server in DATADIR, lockctl preloaded, listening on
#       127.0.0.1:PORT and on a unix socket in DATADIR; extra lines go to its
#       configuration after the defaults, so they override them.  A server
#       already running there on PORT is reused, unless lockctl was installed
#       again or the extra lines changed since it started (then it is
#       restarted).  Fails, saying so, when PORT is taken by anything else.  DATADIR's parent must exist; DATADIR
#       is created and given to the server user.
#   lockctl_scratch_stop DATADIR         stop it (fast shutdown), if running.
#   lockctl_scratch_psql DATADIR PORT DB ARGS...   psql as the server user
#       over the unix socket, stopping at the first error.
#
#   lockctl_scratch_password DATADIR     the password for TCP connections.
#
# Authentication: "trust" on the unix socket, which lives in DATADIR (mode
# 700: only the server user and root can reach it); on 127.0.0.1, the
# server user's password (scram-sha-256), made at random and kept in
# DATADIR/lockctl-scratch.password.  Nothing listens beyond 127.0.0.1.  A
# scratch server for one machine, never a production one.
# ---------------------------------------------------------------------------

# As lockctl_as_server_user, from / (the caller's directory may be out of
# the server user's reach).
lockctl_scratch_as_server_user() {
    (cd / && lockctl_as_server_user "$@")
}

# The port of the server running in DATADIR, or nothing.
lockctl_scratch_running_port() {
    local data=$1
    lockctl_scratch_as_server_user pg_ctl status -D "$data" >/dev/null 2>&1 || return 0
    sed -n 4p "$data/postmaster.pid" 2>/dev/null || true
}

# True when something accepts TCP connections on 127.0.0.1:PORT.
lockctl_port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

lockctl_scratch_start() {
    local data=$1 port=$2 user running lib extra
    shift 2
    extra=$(printf '%s\n' "$@")
    user=$(lockctl_server_user)
    [[ $port =~ ^[0-9]+$ ]] && [ "$port" -ge 1024 ] && [ "$port" -le 65535 ] ||
        lockctl_die "port '$port' is not a number between 1024 and 65535"
    # The socket lives in the data directory; its path has a hard limit.
    [ ${#data} -le 90 ] ||
        lockctl_die "data directory path too long for a unix socket (${#data} > 90 characters): $data"
    if [ ! -d "$data" ]; then
        if [ "$(id -un)" = "$user" ]; then
            mkdir -m 700 "$data"
        else
            lockctl_as_root install -d -m 700 -o "$user" "$data"
        fi
    fi
    if [ ! -f "$data/PG_VERSION" ]; then
        lockctl_log "creating a scratch PostgreSQL cluster in $data"
        lockctl_scratch_as_server_user initdb -D "$data" -U "$user" \
            --auth-local=trust --auth-host=scram-sha-256 \
            --encoding=UTF8 --no-locale >"$data.initdb.log" 2>&1 ||
            { cat "$data.initdb.log" >&2; lockctl_die "initdb failed"; }
        rm -f "$data.initdb.log"
        lockctl_scratch_as_server_user sh -c "echo \"include_if_exists = 'lockctl-scratch.conf'\" >> '$data/postgresql.conf'"
    fi
    # A cluster is tied to the major that made it.
    local made
    made=$(lockctl_scratch_as_server_user cat "$data/PG_VERSION")
    [ "$made" = "$PG_MAJOR" ] ||
        lockctl_die "the scratch cluster in $data was made by PostgreSQL $made, not $PG_MAJOR; use PG_MAJOR=$made, or stop and delete it (bash scripts/demo reset)"

    lockctl_scratch_as_server_user sh -c "cat > '$data/pg_hba.conf'" <<HBA
# Written by scripts/lib.sh (lockctl_scratch_start) at every start.
# The socket's directory is the data directory: only the server user and
# root reach it.  TCP (127.0.0.1 only) needs lockctl-scratch.password.
local all all                trust
host  all all 127.0.0.1/32   scram-sha-256
HBA
    if ! lockctl_scratch_as_server_user test -s "$data/lockctl-scratch.password"; then
        lockctl_scratch_as_server_user sh -c "umask 077; od -An -N18 -tx1 /dev/urandom | tr -d ' \n' > '$data/lockctl-scratch.password'"
    fi

    # The library the server would load now, to tell whether a running
    # server loaded the same one.
    lib=$( (cat "$("$PG_CONFIG" --pkglibdir)/lockctl.so"; echo "$extra") | cksum)
    running=$(lockctl_scratch_running_port "$data")
    if [ -n "$running" ]; then
        if [ "$running" = "$port" ] &&
           [ "$lib" = "$(cat "$data/lockctl-scratch.lib" 2>/dev/null)" ]; then
            lockctl_log "reusing the scratch server already running in $data (port $port)"
            lockctl_scratch_as_server_user pg_ctl reload -D "$data" >/dev/null
            lockctl_scratch_set_password "$data" "$port"
            return 0
        fi
        if [ "$running" != "$port" ] && lockctl_port_in_use "$port"; then
            lockctl_die "port $port on 127.0.0.1 is taken by another program; choose a free one, e.g. LOCKCTL_PORT=$((port + 1))"
        fi
        if [ "$running" != "$port" ]; then
            lockctl_log "the scratch server in $data runs on port $running; restarting it on port $port"
        else
            lockctl_log "lockctl was built and installed anew since the scratch server started: restarting it"
        fi
        lockctl_scratch_stop "$data"
    fi
    if lockctl_port_in_use "$port"; then
        lockctl_die "port $port on 127.0.0.1 is taken by another program; choose a free one, e.g. LOCKCTL_PORT=$((port + 1))"
    fi

    lockctl_scratch_as_server_user sh -c "cat > '$data/lockctl-scratch.conf'" <<CONF
# Written by scripts/lib.sh (lockctl_scratch_start) at every start.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$data'
shared_preload_libraries = 'lockctl'
max_connections = 100
# A scratch server: durability traded for speed.
synchronous_commit = off
fsync = off
full_page_writes = off
$extra
CONF
    lockctl_scratch_as_server_user sh -c "cat > '$data/lockctl-scratch.lib'" <<<"$lib"
    lockctl_log "starting the scratch server (port $port, log in $data/server.log)"
    if ! lockctl_scratch_as_server_user pg_ctl start -D "$data" -l "$data/server.log" -w -t 60 >/dev/null; then
        tail -20 "$data/server.log" >&2 || true
        lockctl_die "the scratch server did not start (log: $data/server.log)"
    fi
    lockctl_scratch_set_password "$data" "$port"
}

lockctl_scratch_password() {
    lockctl_scratch_as_server_user cat "$1/lockctl-scratch.password"
}

# Give the server user the password of DATADIR/lockctl-scratch.password
# (through stdin: never on a command line).
lockctl_scratch_set_password() {
    local data=$1 port=$2
    lockctl_scratch_psql "$data" "$port" postgres <<SQL
SET log_statement = 'none';
ALTER ROLE CURRENT_USER PASSWORD '$(lockctl_scratch_password "$data")';
SQL
}

lockctl_scratch_stop() {
    local data=$1
    if [ -n "$(lockctl_scratch_running_port "$data")" ]; then
        lockctl_scratch_as_server_user pg_ctl stop -D "$data" -m fast -w -t 60 >/dev/null
    fi
}

lockctl_scratch_psql() {
    local data=$1 port=$2 db=$3
    shift 3
    lockctl_scratch_as_server_user psql -X -q -v ON_ERROR_STOP=1 -h "$data" -p "$port" -d "$db" "$@"
}
