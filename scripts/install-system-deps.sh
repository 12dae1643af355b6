#!/bin/sh
# Install the Debian packages portenv's demo, and with --tests its test suite, need (Debian 12
# host; idempotent).
#
# The demo (examples/demo.sh) needs:
#   python3-venv         `python3 -m venv .venv` (Debian splits ensurepip out of python3)
#   gcc, libc6-dev       compile the C packages of the local test channel (gcc only recommends
#                        libc6-dev: without it a fresh machine has no stdio.h)
#   dpkg, apt            `apt-get download` + `dpkg-deb -x` build the glibc+busybox rootfs
#   util-linux, mount    unshare(1) and mount(8) for the per-run overlay sandbox
#   tar, coreutils       rootfs cache tarballs, `env -i` inside the sandbox
#   xz-utils             unpacks zstd's source (.orig.tar.xz) for scripts/build-unzstd.sh,
#                        which gcc then builds into portenv-unzstd (the default archive's)
# The tests (--tests) need these too, and:
#   debootstrap, debian-archive-keyring, gpgv, wget
#                        build the Debian rootfs fixtures (tests/support/rootfs.py)
#   busybox-static       host-side tests of the target shell scripts under busybox sh
#                        (it replaces the dynamic `busybox` package if that is installed)
#   dash                 host-side tests under dash (Debian's /bin/sh)
#   (package) shellcheck lints the target shell scripts (tests/unit/test_unpack_sh.py)
#   gcc-aarch64-linux-gnu, libc6-dev-arm64-cross
#                        cross-compile the C packages for the linux-aarch64 test channel,
#                        and portenv-unzstd for aarch64
#   qemu-user-static     runs arm64 programs (the aarch64 env in an arm64 rootfs) via binfmt_misc
#   zstd                 `zstd -dc` of zstd payloads in tests, and of older archives without
#                        a carried decompressor (the sh unpacker's fallback)
#   libpq-dev            builds psycopg2 from its sdist: a wheel whose libpq.so.5 portenv bundles
#   chromium             a headless browser renders `portenv inspect --html` reports (no console
#                        errors, every package shown: tests/integration/test_inspect_html.py)
#   default-jre-headless pyspark's JVMs (tests/e2e/test_engines.py: Spark runs a plain archive)
#   iproute2             `ip link set lo up` in the engines' private network namespace
#   zsh, mksh            a plain archive's bin/activate sourced by them (tests/unit/test_plain.py)
#
# `apt-get update` runs at most once, and only when something is missing.
# Needs root (uses sudo when run as another user and sudo exists).
set -eu

PKGS="python3-venv gcc libc6-dev dpkg apt util-linux mount tar coreutils xz-utils"
TEST_PKGS="debootstrap debian-archive-keyring gpgv wget busybox-static dash shellcheck gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static zstd libpq-dev chromium default-jre-headless iproute2 zsh mksh"
case ${1:-} in
--tests) PKGS="$PKGS $TEST_PKGS" ;;
'') ;;
*) echo "usage: sh scripts/install-system-deps.sh [--tests]" >&2; exit 2 ;;
esac

missing=""
for pkg in $PKGS; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    case "$status" in
        *" ok installed") ;;
        *) missing="$missing $pkg" ;;
    esac
done

if [ -n "$missing" ]; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            SUDO="sudo"
        else
            echo "error: need root to install:$missing" >&2
            exit 1
        fi
    fi
    echo "installing:$missing"
    # Wait for a concurrent apt/dpkg run instead of failing on its lock.
    APT_OPTS="-o DPkg::Lock::Timeout=600 -o Acquire::Retries=3"
    # shellcheck disable=SC2086
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get $APT_OPTS update -q
    # shellcheck disable=SC2086
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get $APT_OPTS install -y -q \
        --no-install-recommends $missing
else
    echo "system dependencies already installed"
fi

# What the rootfs fixtures need from the kernel, reported (not fatal: the fixtures raise a
# clear error themselves when they cannot work).
if ! grep -qw overlay /proc/filesystems 2>/dev/null; then
    if command -v modprobe >/dev/null 2>&1; then
        ${SUDO:-} modprobe overlay 2>/dev/null || true
    fi
    grep -qw overlay /proc/filesystems 2>/dev/null \
        || echo "warning: overlayfs is not available in this kernel" >&2
fi
