#!/bin/sh
# Measure the README's set-up commands as a new user runs them on a fresh Debian machine: the
# figures README.md states ("Try it" and "Run the tests") come from this script.
#
#   sh scripts/measure-fresh-setup.sh [--keep] [--test-minutes N] [--no-tests]
#                                     [--python PREFIX] [REPO]
#
# --python PREFIX copies a CPython install (e.g. a pyenv 3.12, which the demo's pixi half and
# the tests need; Debian 12 has 3.11) into the machine at the same path and puts its bin/
# first on PATH, as for a user who has one: its python3 then makes .venv.
#
# What it does (root, on a Debian host with debootstrap; 10-30 minutes on 2 cores):
#   1. `debootstrap --variant=minbase` of the host's own Debian release into a scratch folder
#      under ${TMPDIR:-/tmp}, from the Debian mirror the host's apt uses (read from /etc/apt at
#      run time; MIRROR=URL chooses another), with the host's network, its resolv.conf, /proc
#      and /dev; then only what a new user has on top: git, ca-certificates, python3, and the
#      network's TLS settings (the local CAs and CA-bundle variables of the host, if any).
#   2. `git clone` of REPO's HEAD (default: the repository holding this script) into /root.
#   3. In that machine, as root with a clean environment (no pip or proxy settings of the
#      host: packages come from the real indexes), each command timed on its own:
#        demo-setup    sh scripts/bootstrap.sh
#        demo          sh examples/demo.sh
#        tests-deps    sh scripts/install-system-deps.sh --tests
#        tests-venv    sh scripts/bootstrap.sh --tests
#        tests-fast    sh scripts/test.sh --fast -x -q   (killed after --test-minutes, 20)
#      (demo-setup, `sh scripts/bootstrap.sh`, is timed first on its own: the demo's set-up,
#      apart from its job), and what each downloaded: apt's "Need to get" figure, how much
#      .venv and the uv and portenv caches grew; then the size of the wheels pip fetches for
#      .[demo] and .[test] (fetched again into a scratch folder: the set-up keeps no pip cache).
#   4. A table of the figures on stdout. Everything runs in a private mount namespace, and the
#      machine's mounts are undone (umount -R) and its folder removed at the end, unless --keep
#      (then the path is printed; the logs are in its logs/ folder either way).
set -eu

KEEP=
TEST_MINUTES=20
TESTS=1
EXTRA_PYTHON=
REPO=
while [ $# -gt 0 ]; do
    case $1 in
    --keep) KEEP=1 ;;
    --test-minutes) TEST_MINUTES=$2; shift ;;
    --no-tests) TESTS= ;;
    --python) EXTRA_PYTHON=$2; shift ;;
    -*) echo "usage: sh scripts/measure-fresh-setup.sh [--keep] [--test-minutes N] [--no-tests] [--python PREFIX] [REPO]" >&2; exit 2 ;;
    *) REPO=$1 ;;
    esac
    shift
done
REPO=${REPO:-$(cd "$(dirname "$0")/.." && pwd -P)}

die() {
    printf 'error: %s\n  hint: %s\n' "$1" "$2" >&2
    exit 1
}
[ "$(id -u)" = 0 ] || die "this needs root (debootstrap, chroot, mounts)" "run it with sudo"
command -v debootstrap >/dev/null 2>&1 || die "debootstrap is not installed" "apt-get install debootstrap"
git -C "$REPO" rev-parse HEAD >/dev/null 2>&1 || die "not a git repository: $REPO" "name a portenv checkout"
if [ -n "$EXTRA_PYTHON" ]; then
    [ -x "$EXTRA_PYTHON/bin/python3" ] || die "no bin/python3 in $EXTRA_PYTHON" "name a CPython install prefix"
    EXTRA_PYTHON=$(cd "$EXTRA_PYTHON" && pwd -P)
fi

# A private mount namespace: whatever happens, no mount of the fresh machine outlives us.
if [ -z "${PORTENV_MEASURE_NS:-}" ]; then
    NOTESTS=
    [ -n "$TESTS" ] || NOTESTS=--no-tests
    PORTENV_MEASURE_NS=1 exec unshare --mount --propagation private \
        sh "$0" ${KEEP:+--keep} $NOTESTS ${EXTRA_PYTHON:+--python "$EXTRA_PYTHON"} \
        --test-minutes "$TEST_MINUTES" "$REPO"
fi

# The host's release, and the Debian mirror its apt uses (deb822 or one-line sources).
. /etc/os-release
SUITE=$VERSION_CODENAME
if [ -z "${MIRROR:-}" ]; then
    MIRROR=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
        /etc/apt/sources.list.d/*.list 2>/dev/null \
        | tr ' \t' '\n\n' | grep -E '^https?://.*/debian/?$' | head -n 1 || true)
fi
[ -n "$MIRROR" ] || die "no Debian mirror found in /etc/apt" "set MIRROR=URL of a Debian archive"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/portenv-fresh.XXXXXX")
ROOT=$WORK/root
LOGS=$WORK/logs
mkdir -p "$ROOT" "$LOGS"
RESULTS=$LOGS/results.txt

# The mount points at or under ROOT, deepest first.
mounts() { awk -v r="$ROOT" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r; }
cleanup() {
    # The per-test overlays, /dev, /proc, then the machine's own bind mount.
    for m in $(mounts); do
        umount -R "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    if [ -n "$(mounts)" ]; then
        echo "warning: mounts left under $ROOT; not removing it" >&2
    elif [ -z "$KEEP" ]; then
        rm -rf --one-file-system "$ROOT" || true
    fi
    echo "logs: $LOGS${KEEP:+ (machine kept: $ROOT)}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", b - a }'; }
# The KiB of a folder inside the machine (0 when it does not exist).
kib() {
    if [ -e "$ROOT$1" ]; then du -sk "$ROOT$1" | cut -f1; else echo 0; fi
}
# KiB -> MB (10^6 bytes, as apt counts).
mb() { awk -v k="$1" 'BEGIN { printf "%.0f", k * 1024 / 1e6 }'; }
caches() { echo "$(kib /root/portenv/.venv) $(kib /root/.cache/uv) $(kib /root/.cache/portenv)"; }

# The network's TLS settings: where HTTPS is intercepted (as where portenv is developed), the
# host trusts local CAs and points its tools at the system bundle with these variables; the
# machine gets the same CAs and the same variables (none of either on an ordinary network).
TLS_ENV=
for var in SSL_CERT_FILE SSL_CERT_DIR REQUESTS_CA_BUNDLE PIP_CERT CURL_CA_BUNDLE; do
    value=$(printenv "$var" || true)
    case $value in
    /etc/ssl/*) TLS_ENV="$TLS_ENV $var=$value" ;;
    esac
done

# Run a command in the machine as a new user would: a login-like clean environment.
in_machine() {
    # shellcheck disable=SC2086
    chroot "$ROOT" /usr/bin/env -i HOME=/root USER=root LOGNAME=root TERM=dumb LANG=C.UTF-8 \
        PATH=${EXTRA_PYTHON:+$EXTRA_PYTHON/bin:}/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin $TLS_ENV \
        /bin/sh -c "$1"
}

# step NAME COMMAND: time one command inside the machine, log it, and add a line to RESULTS.
step() {
    name=$1
    before=$(caches)
    echo "== $name: $2"
    t0=$(now)
    rc=0
    in_machine "cd /root/portenv && $2" >"$LOGS/$name.log" 2>&1 || rc=$?
    t1=$(now)
    after=$(caches)
    apt_get=$(grep -h '^Need to get' "$LOGS/$name.log" | sed 's/^Need to get \([^/]*\)\(\/.*\)\{0,1\} of archives\..*/\1/' | tr '\n' '+' | sed 's/+$//')
    # shellcheck disable=SC2086
    set -- $before $after
    printf '%-10s exit %-3s %5s s  load %-5s apt: %-9s .venv +%s MB, caches: uv +%s MB, portenv +%s MB\n' \
        "$name" "$rc" "$(secs "$t0" "$t1")" "$(cut -d' ' -f1 /proc/loadavg)" "${apt_get:-0 B}" \
        "$(mb $(($4 - $1)))" "$(mb $(($5 - $2)))" "$(mb $(($6 - $3)))" | tee -a "$RESULTS"
    tail -n 5 "$LOGS/$name.log"
    return "$rc"
}

echo "fresh $PRETTY_NAME machine in $ROOT (mirror from /etc/apt), repository $REPO at $(git -C "$REPO" rev-parse --short HEAD)"
echo "host: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%Y-%m-%d %H:%M UTC')" | tee "$RESULTS"

t0=$(now)
debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >"$LOGS/debootstrap.log" 2>&1 \
    || { tail -n 20 "$LOGS/debootstrap.log"; die "debootstrap failed" "see $LOGS/debootstrap.log"; }
echo "debootstrap $(secs "$t0" "$(now)") s, $(mb "$(kib /)") MB" | tee -a "$RESULTS"

# The machine: the host's network and name service, /proc and /dev, the release's updates.
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# Its / a mount point, as on a real machine: `unshare --mount` (the test sandbox) changes the
# propagation of /, which a plain chroot folder refuses (EINVAL).
mount --bind "$ROOT" "$ROOT"
mount -t proc proc "$ROOT/proc"
mount --rbind /dev "$ROOT/dev"
mount --make-rslave "$ROOT/dev"
{
    echo "deb $MIRROR $SUITE main"
    echo "deb $MIRROR $SUITE-updates main"
    echo "deb ${MIRROR%/debian*}/debian-security $SUITE-security main"
} >"$ROOT/etc/apt/sources.list"

# What a new user's machine has before reading the README.
in_machine "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends git ca-certificates python3" >"$LOGS/base.log" 2>&1 \
    || { tail -n 20 "$LOGS/base.log"; die "installing git, ca-certificates, python3 failed" "see $LOGS/base.log"; }
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
    cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
    in_machine "update-ca-certificates" >>"$LOGS/base.log" 2>&1
fi
echo "base (git ca-certificates python3): $(grep -h '^Need to get' "$LOGS/base.log" | head -n 1)" | tee -a "$RESULTS"

if [ -n "$EXTRA_PYTHON" ]; then
    mkdir -p "$ROOT$(dirname "$EXTRA_PYTHON")"
    cp -a "$EXTRA_PYTHON" "$ROOT$EXTRA_PYTHON"
    echo "with $(in_machine "python3 -V") from $EXTRA_PYTHON" | tee -a "$RESULTS"
fi

git -C "$REPO" bundle create "$ROOT/root/portenv.bundle" HEAD >/dev/null 2>&1
in_machine "git -c advice.detachedHead=false clone -q /root/portenv.bundle /root/portenv && rm /root/portenv.bundle"

# The demo's set-up first on its own (what examples/demo.sh runs before the job), then the
# demo command itself: its own set-up is then a quick no-op, the rest is the job. A failed
# step is reported and the next one still runs.
step demo-setup "sh scripts/bootstrap.sh" || true
step demo "sh examples/demo.sh" || true
if [ -n "$TESTS" ]; then
    step tests-deps "sh scripts/install-system-deps.sh --tests" || true
    step tests-venv "sh scripts/bootstrap.sh --tests" || true
    step tests-fast "timeout $((TEST_MINUTES * 60)) sh scripts/test.sh --fast -x -q" || true
fi
# What pip downloaded: the set-up left no pip cache to weigh, so fetch the same wheels again
# into a scratch folder.
for extra in demo test; do
    rm -rf "$ROOT/tmp/wheels"
    if in_machine "cd /root/portenv && .venv/bin/python -m pip download -q -d /tmp/wheels '.[$extra]' pip" \
        >"$LOGS/wheels-$extra.log" 2>&1; then
        echo "pip wheels of .[$extra]: $(mb "$(kib /tmp/wheels)") MB in $(ls "$ROOT/tmp/wheels" | wc -l) files" \
            | tee -a "$RESULTS"
    else
        echo "pip wheels of .[$extra]: pip download failed, see $LOGS/wheels-$extra.log" | tee -a "$RESULTS"
    fi
    rm -rf "$ROOT/tmp/wheels"
done
echo
cat "$RESULTS"
