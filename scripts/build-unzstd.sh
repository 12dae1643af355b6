#!/bin/sh
# Build portenv-unzstd (scripts/unzstd/unzstd.c linked with zstd's own decoder) for x86_64
# and aarch64, with no C library, into src/portenv/target/unzstd/ARCH/ (package data, not in
# git). zstd's source is Debian's libzstd source package: its version and sha256 are pinned
# here and checked against the .dsc; the archive's address is read from apt's own sources.
# Builds are cached under ~/.cache/portenv-build, keyed by the zstd version and this script.
# Usage: sh scripts/build-unzstd.sh [--force] [ARCH...]   (default: x86_64 aarch64)
set -eu
cd "$(dirname "$0")/.."
ZSTD_VERSION=1.5.4+dfsg2
ZSTD_DEB_REVISION=5
ZSTD_ORIG_SHA256=8cf4bbb65e77ec348d052c8d6230eba66d435bddf64c8b5be2fcb16880c19953
WINDOW_LOG_MAX=27
FORCE=
[ "${1:-}" != --force ] || { FORCE=1; shift; }
[ $# -gt 0 ] || set -- x86_64 aarch64
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/portenv-build/unzstd
OUT=src/portenv/target/unzstd
KEY=$(cat scripts/build-unzstd.sh scripts/unzstd/unzstd.c | sha256sum | cut -c1-16)
KEY=$ZSTD_VERSION-$KEY
ORIG=libzstd_$ZSTD_VERSION.orig.tar.xz
DSC=libzstd_$ZSTD_VERSION-$ZSTD_DEB_REVISION.dsc

download() { # URL FILE, with what any machine that runs portenv has: python3
    python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' "$1" "$2"
}

die() { echo "error: $1" >&2; [ -z "${2:-}" ] || echo "  hint: $2" >&2; exit 1; }

mirror() { # the first Debian archive apt is set up with (deb822 or one-line sources)
    for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        m=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)\/*$/\1/p; s/^deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]*\)\{0,1\}\([^[:space:]]*\/debian\)\/*[[:space:]].*/\2/p' "$f" | head -n 1)
        [ -z "$m" ] || { echo "$m"; return 0; }
    done
    return 1
}

fetch_source() { # unpacks zstd's source into $CACHE/src-$ZSTD_VERSION
    [ ! -f "$CACHE/src-$ZSTD_VERSION/lib/zstd.h" ] || return 0
    mkdir -p "$CACHE"
    if [ ! -f "$CACHE/$ORIG" ] || [ "$(sha256sum <"$CACHE/$ORIG" | cut -c1-64)" != "$ZSTD_ORIG_SHA256" ]; then
        base=$(mirror) || die "no Debian archive in apt's sources" "add one to /etc/apt/sources.list.d"
        pool=$base/pool/main/libz/libzstd
        download "$pool/$DSC" "$CACHE/$DSC" || die "cannot download $DSC" "check the network"
        grep -q " $ZSTD_ORIG_SHA256 [0-9]* $ORIG\$" "$CACHE/$DSC" ||
            die "$DSC does not list $ORIG with the pinned sha256" "update ZSTD_* in $0 together"
        download "$pool/$ORIG" "$CACHE/$ORIG.part" || die "cannot download $ORIG" "check the network"
        got=$(sha256sum <"$CACHE/$ORIG.part" | cut -c1-64)
        [ "$got" = "$ZSTD_ORIG_SHA256" ] || die "$ORIG has sha256 $got, not $ZSTD_ORIG_SHA256" "download it again"
        mv "$CACHE/$ORIG.part" "$CACHE/$ORIG"
    fi
    rm -rf "$CACHE/src.part"
    mkdir -p "$CACHE/src.part"
    tar -xJf "$CACHE/$ORIG" -C "$CACHE/src.part" --strip-components=1
    rm -rf "$CACHE/src-$ZSTD_VERSION"
    mv "$CACHE/src.part" "$CACHE/src-$ZSTD_VERSION"
}

compiler() { # ARCH -> the C compiler that targets it
    case $1 in
    x86_64) c=x86_64-linux-gnu-gcc ;;
    aarch64) c=aarch64-linux-gnu-gcc ;;
    *) die "no build of portenv-unzstd for $1" "choose x86_64 or aarch64" ;;
    esac
    if ! command -v "$c" >/dev/null 2>&1; then
        if [ "$(uname -m)" = "$1" ] && command -v gcc >/dev/null 2>&1; then
            c=gcc
        else
            die "$c is missing" "run: sh scripts/install-system-deps.sh --tests"
        fi
    fi
    echo "$c"
}

build() { # ARCH: $CACHE/$KEY/ARCH/portenv-unzstd
    arch=$1
    dest=$CACHE/$KEY/$arch
    [ -z "$FORCE" ] && [ -x "$dest/portenv-unzstd" ] && return 0
    cc=$(compiler "$arch")
    src=$CACHE/src-$ZSTD_VERSION/lib
    work=$CACHE/$KEY/$arch.part
    rm -rf "$work"
    mkdir -p "$work"
    for f in common/entropy_common common/error_private common/fse_decompress common/xxhash \
        common/zstd_common decompress/huf_decompress decompress/zstd_ddict \
        decompress/zstd_decompress decompress/zstd_decompress_block; do
        set -- "$@" "$src/$f.c"
    done
    shift
    "$cc" -O2 -ffreestanding -fno-builtin -fno-tree-loop-distribute-patterns -nostdlib -static -fno-stack-protector -fno-pie -no-pie \
        -fno-asynchronous-unwind-tables -fno-unwind-tables -ffunction-sections -fdata-sections \
        -DZSTD_DISABLE_ASM -DZSTD_NO_TRACE -DZSTD_TRACE=0 -DZSTD_LEGACY_SUPPORT=0 -DDEBUGLEVEL=0 \
        -DNDEBUG -DZSTD_NO_INTRINSICS -DXXH_NO_STDLIB \
        -DUNZSTD_WINDOW_LOG_MAX=$WINDOW_LOG_MAX -I"$src" -I"$src/common" \
        -o "$work/portenv-unzstd" scripts/unzstd/unzstd.c "$@" \
        -Wl,--gc-sections -Wl,--build-id=none -s -lgcc
    rm -rf "$dest"
    mv "$work" "$dest"
}

case ${1:-} in -*) die "unknown option $1" "usage: sh scripts/build-unzstd.sh [--force] [ARCH...]" ;; esac
fetch_source
for arch; do
    build "$arch"
    mkdir -p "$OUT/$arch"
    cp "$CACHE/$KEY/$arch/portenv-unzstd" "$OUT/$arch/portenv-unzstd.part"
    mv "$OUT/$arch/portenv-unzstd.part" "$OUT/$arch/portenv-unzstd"
    echo "portenv-unzstd $arch: $(wc -c <"$OUT/$arch/portenv-unzstd") bytes (zstd $ZSTD_VERSION)"
done
{
    cat scripts/unzstd/LICENSE-zstd.header
    cat "$CACHE/src-$ZSTD_VERSION/LICENSE"
} >"$OUT/LICENSE-zstd"
