#!/bin/sh
# shellcheck disable=SC2015,SC2016,SC2317,SC1003
# portenv-unpack: unpack a portenv archive (docs/format.md) on a machine that has
# only sh, tar, gzip and glibc. As the head of a self-extracting env.sh, the line
# below holds the byte offset of the archive in this file; 0 means standalone.
PORTENV_EMBEDDED_OFFSET=0000000000
# POSIX sh only (dash, bash, busybox ash). Writes nothing before every check passed.

LC_ALL=C
export LC_ALL
NL='
'

usage() {
    printf '%s\n' \
        'usage: sh portenv-unpack ARCHIVE.tar [-o DIR] [options]' \
        '       sh env.sh [-o DIR] [options]' \
        '' \
        'Unpack the environment into DIR/NAME and relocate it there.' \
        '' \
        '  -o, --output DIR   parent folder, created if missing (default: .)' \
        '  --env-name NAME    folder name under DIR (default: the archive'"'"'s env_name)' \
        '  --force            replace an existing environment at DIR/NAME' \
        '  --sha256 HEX       also require this sha256 of the whole archive file' \
        '  --check            run every check, write nothing, exit 0 if all pass' \
        '  --info             print the archive'"'"'s meta block and exit' \
        '  --list             verify the payload, then list the packages inside' \
        '  -h, --help         show this help' \
        '' \
        'exit codes: 0 ok, 2 usage, 3 bad archive, 4 incompatible machine,' \
        '5 destination problem, 6 not enough disk space, 7 sha256 mismatch,' \
        '8 extraction or relocation failed'
}

die() { # CODE WHAT [HINT]
    printf 'error: %s\n' "$2" >&2
    [ -z "$3" ] || printf '  hint: %s\n' "$3" >&2
    exit "$1"
}

rd() { # OFFSET COUNT: COUNT bytes of the archive from byte OFFSET (0-based)
    tail -c +$(($1 + 1)) "$F" 2>/dev/null | head -c "$2"
}

meta() { # KEY: its value in the meta block
    printf '%s\n' "$META" | sed -n "/^$1=/{s/^$1=//p;q;}"
}

isnum() { case $1 in '' | *[!0-9]* | 0?*) return 1 ;; esac; }

alive() { # PID: a process other than this one runs under PID
    [ "$1" != "$$" ] && { kill -0 "$1" 2>/dev/null || [ -d "/proc/$1" ]; }
}

ver_ge() { # A B: version A >= version B (dotted numbers)
    a=$1.
    b=$2.
    while [ -n "$a$b" ]; do
        x=${a%%.*}
        y=${b%%.*}
        a=${a#*.}
        b=${b#*.}
        [ "${x:-0}" -gt "${y:-0}" ] && return 0
        [ "${x:-0}" -lt "${y:-0}" ] && return 1
    done
    return 0
}

check_member() { # OFFSET NAME SIZE: a ustar header for member NAME of SIZE bytes
    [ "$(rd $(($1 + 257)) 5 | tr -d '\000')" = ustar ] || return 1
    [ "$(rd "$1" 100 | tr '\000' '\n' | sed -n 1p)" = "$2" ] || return 1
    [ "$(rd $(($1 + 124)) 12 | tr -d '\000' | sed 's/[^0-7]//g; s/^0*//')" = "$(printf '%o' "$3")" ]
}

libc_version() { # LIBC: the glibc version that executing LIBC prints
    [ -f "$1" ] || return 1
    v=$("$1" 2>/dev/null | sed -n '1s/.* version \([0-9][0-9.]*[0-9]\).*/\1/p')
    [ -n "$v" ] && printf '%s\n' "$v"
}

glibc_version() { # the target's glibc version: run libc.so.6 beside the loader
    for ld in /lib64/ld-linux*.so.* /lib/ld-linux*.so.* /lib64/ld64.so.* /lib/ld64.so.*; do
        [ -e "$ld" ] || continue
        real=$(readlink -f "$ld" 2>/dev/null)
        libc_version "${real%/*}/libc.so.6" && return 0
        libc_version "${ld%/*}/libc.so.6" && return 0
    done
    for lib in /lib/*-linux-gnu*/libc.so.6 /usr/lib/*-linux-gnu*/libc.so.6 \
        /lib64/libc.so.6 /usr/lib64/libc.so.6 /lib/libc.so.6 /usr/lib/libc.so.6; do
        libc_version "$lib" && return 0
    done
    v=$(getconf GNU_LIBC_VERSION 2>/dev/null) && [ -n "${v#glibc }" ] && printf '%s\n' "${v#glibc }"
}

resolve_dir() { # sets ADIR (DIR made absolute, physical where it exists) and BASE
    d=$DIR                       # (the deepest folder of ADIR that exists already)
    case $d in /*) ;; *) d=$(pwd -P)/$d ;; esac
    rest=
    while [ ! -d "$d" ]; do
        rest=/${d##*/}$rest
        d=${d%/*}
        [ -n "$d" ] || d=/
    done
    ADIR=$(cd "$d" && pwd -P) || die 5 "cannot enter $d" "check its permissions"
    oifs=$IFS
    IFS=/
    set -f
    for c in $rest; do
        case $c in '' | .) ;; ..) ADIR=${ADIR%/*} ;; *) ADIR=${ADIR%/}/$c ;; esac
    done
    IFS=$oifs
    set +f
    BASE=${ADIR:-/}
    while [ ! -e "$BASE" ] && [ ! -L "$BASE" ]; do
        BASE=${BASE%/*}
        BASE=${BASE:-/}
    done
    [ -d "$BASE" ] || die 5 "$BASE is not a folder" "choose another -o DIR"
    rest=${ADIR#"$BASE"}
    BASE=$(cd "$BASE" && pwd -P) || die 5 "cannot enter $BASE" "check its permissions"
    rest=${rest#/}
    ADIR=$BASE
    [ -z "$rest" ] || ADIR=${BASE%/}/$rest
}

is_empty_dir() {
    for e in "$1"/* "$1"/.[!.]* "$1"/..?*; do
        [ -e "$e" ] || [ -L "$e" ] && return 1
    done
    return 0
}

check_existing() { # check 5: DEST is free, or --force and DEST is a portenv env
    [ -e "$DEST" ] || [ -L "$DEST" ] || return 0
    [ -n "$FORCE" ] || die 5 "$DEST already exists" \
        "pass --force to replace it, or choose another -o DIR or --env-name"
    [ -d "$DEST/.portenv" ] && [ ! -L "$DEST" ] && return 0
    [ -d "$DEST" ] && [ ! -L "$DEST" ] && is_empty_dir "$DEST" && return 0
    die 5 "$DEST exists and is not a portenv environment: --force will not replace it" \
        "remove it yourself, or choose another -o DIR or --env-name"
}

free_kib() { # FOLDER: free KiB on its file system (empty if df fails)
    df -kP "$1" 2>/dev/null | sed -n '$p' | {
        read -r _fs _total _used avail _rest
        printf '%s\n' "$avail"
    }
}

sweep() { # after taking the lock: remove what dead unpacks into DEST left behind
    for t in "$ADIR"/.portenv-tmp."$NAME".*; do
        p=${t#"$ADIR/.portenv-tmp.$NAME."}
        isnum "$p" && ! alive "$p" && rm -rf "$t"
    done
    for o in "$ADIR"/.portenv-old."$NAME".*; do
        p=${o#"$ADIR/.portenv-old.$NAME."}
        isnum "$p" && ! alive "$p" || continue
        if [ -e "$DEST" ] || [ -L "$DEST" ]; then
            rm -rf "$o"
        elif mv "$o" "$DEST"; then
            printf 'portenv: restored %s, left aside by an interrupted --force unpack\n' "$DEST" >&2
        fi
    done
}

take_lock() {
    n=0
    while ! mkdir "$LOCK" 2>/dev/null; do
        pid=$(sed -n 1p "$LOCK/pid" 2>/dev/null)
        if [ -z "$pid" ] && [ $n = 0 ]; then # its owner may be writing the pid file
            n=1
            sleep 1
            continue
        fi
        isnum "$pid" && alive "$pid" && die 5 "another unpack into $DEST is running (pid $pid)" \
            "wait for it to finish, or remove $LOCK if no unpack is running"
        [ $n != 2 ] || die 5 "cannot create the lock $LOCK" "check that $ADIR is writable"
        n=2
        rm -rf "$LOCK"
    done
    LOCKED=1
    printf '%s\n' "$$" >"$LOCK/pid" || die 5 "cannot write into $LOCK" "check free space and permissions"
}

cleanup() { # EXIT trap: leave DEST and DIR as they were before a failed run
    [ -z "$TMP" ] || rm -rf "$TMP"
    if [ -n "$OLD" ] && [ -e "$OLD" ] && [ ! -e "$DEST" ] && [ ! -L "$DEST" ]; then
        mv "$OLD" "$DEST"
    fi
    [ -z "$LOCKED" ] || rm -rf "$LOCK"
    if [ -n "$MADE" ]; then
        d=$ADIR
        while [ "$d" != "$BASE" ] && rmdir "$d" 2>/dev/null; do d=${d%/*}; done
    fi
}

parse_args() {
    ARCHIVE='' DIR=. NAME='' FORCE='' CHECK='' INFO='' LIST='' WANT_SHA='' NAME_SET=''
    while [ $# -gt 0 ]; do
        case $1 in
        -h | --help) usage; exit 0 ;;
        -o | --output | --env-name | --sha256)
            [ $# -ge 2 ] || die 2 "option $1 needs a value" "see --help"
            a=$1=$2
            shift 2
            set -- "$a" "$@"
            continue ;;
        -o=* | --output=*) DIR=${1#*=} ;;
        --env-name=*) NAME=${1#*=} NAME_SET=1 ;;
        --sha256=*) WANT_SHA=$(printf '%s\n' "${1#*=}" | tr A-F a-f) ;;
        --force) FORCE=1 ;;
        --check) CHECK=1 ;;
        --info) INFO=1 ;;
        --list) LIST=1 ;;
        -?*) die 2 "unknown option: $1" "see --help" ;;
        *)
            [ -z "$ARCHIVE" ] || die 2 "unexpected argument: $1" "give one ARCHIVE (see --help)"
            ARCHIVE=$1 ;;
        esac
        shift
    done
    [ -n "$DIR" ] || die 2 "-o needs a non-empty DIR" "see --help"
    case $WANT_SHA in *[!0-9a-f]*) WANT_SHA=bad ;; esac
    [ -z "$WANT_SHA" ] || [ ${#WANT_SHA} = 64 ] ||
        die 2 "--sha256 needs 64 hex digits" "copy the sha256 published beside the archive"
}

open_archive() { # sets F, META and the meta values; exit 3 on anything wrong
    OFF=$PORTENV_EMBEDDED_OFFSET
    case $OFF in '' | *[!0-9]*) die 3 "damaged unpacker: bad embedded offset" "download it again" ;; esac
    while :; do case $OFF in 0?*) OFF=${OFF#0} ;; *) break ;; esac; done
    if [ "$OFF" = 0 ]; then
        [ -n "$ARCHIVE" ] || die 2 "no ARCHIVE given" "usage: sh portenv-unpack ARCHIVE.tar -o DIR"
        F=$ARCHIVE
    else
        [ -z "$ARCHIVE" ] || die 2 "unexpected argument: $ARCHIVE" \
            "this file carries its own archive: sh $0 -o DIR"
        F=$0
    fi
    case $F in /*) ;; *) F=./$F ;; esac
    [ -f "$F" ] && [ -r "$F" ] || die 3 "cannot read $F" \
        "give the path of a readable file (run env.sh as: sh env.sh -o DIR)"
    if [ "$OFF" = 0 ] && [ "$(rd 0 9 | tr -d '\000')" = "#!/bin/sh" ]; then # an env.sh given as ARCHIVE
        OFF=$(rd 0 1024 | sed -n 's/^PORTENV_EMBEDDED_OFFSET[=]0*\([1-9][0-9]*\)$/\1/p')
        OFF=${OFF:-0}
    fi
    SIZE=$(wc -c <"$F" | tr -d ' ')
    isnum "$SIZE" || SIZE=0
    what="$F is not a portenv archive"
    [ "$OFF" = 0 ] || what="$F carries no portenv archive"
    [ "$SIZE" -ge $((OFF + 512)) ] && check_member "$OFF" portenv/meta 4096 ||
        die 3 "$what" "give an env.tar or env.sh made by portenv"
    [ "$SIZE" -ge $((OFF + 5120)) ] || die 3 "$F is truncated ($SIZE bytes)" "copy it again"
    META=$(rd $((OFF + 512)) 4096 | tr -d '\000')
    FORMAT=$(meta format)
    [ "$FORMAT" = 1 ] || die 3 "$F has archive format '$FORMAT', this unpacker knows format 1" \
        "unpack it with the portenv-unpack of the portenv version that made it"
    [ "$(meta compression)" = gzip ] || die 3 "$F uses compression '$(meta compression)'" \
        "this unpacker knows gzip only: unpack it with a newer portenv-unpack"
    PSIZE=$(meta payload_size) PSHA=$(meta payload_sha256) PY=$(meta python)
    FILES=$(meta files) KIB=$(meta unpacked_kib) PMAX=$(meta prefix_max)
    FLOOR=$(meta glibc_floor) ARCH=$(meta arch) LIBC=$(meta libc)
    bad=
    for k in "$PSIZE" "$FILES" "$KIB" "$PMAX"; do isnum "$k" || bad=1; done
    case $PSHA in *[!0-9a-f]*) bad=1 ;; esac
    [ ${#PSHA} = 64 ] || bad=1
    case $FLOOR in '' | *[!0-9.]* | .* | *. | *..*) bad=1 ;; esac
    case $PY in '' | /* | .. | ../* | */.. | */../*) bad=1 ;; esac
    [ -n "$ARCH" ] && [ -n "$LIBC" ] || bad=1
    [ -z "$bad" ] || die 3 "$F has a damaged meta block" "copy it again, or pack it again"
    check_member $((OFF + 4608)) portenv/payload.tar.gz "$PSIZE" ||
        die 3 "$F has no gzip payload where format 1 puts it" "copy it again, or pack it again"
    [ "$SIZE" -ge $((OFF + 5120 + PSIZE)) ] ||
        die 3 "$F is truncated ($SIZE bytes, needs $((OFF + 5120 + PSIZE)))" "copy it again"
    [ "$NAME_SET" ] || NAME=$(meta env_name)
    [ "$NAME_SET" ] || [ -n "$NAME" ] || NAME='env'
}

check_target() { # checks 1 to 3 of docs/format.md
    [ "$LIBC" = glibc ] || die 4 "this environment needs the C library '$LIBC'" \
        "unpack it on a $LIBC machine"
    GLIBC=$(glibc_version)
    if [ -z "$GLIBC" ]; then
        for m in /lib/ld-musl-*; do
            [ -e "$m" ] && die 4 "this machine uses musl libc; the environment needs glibc" \
                "unpack it on a glibc-based Linux (Debian, Ubuntu, RHEL, ...)"
        done
    fi
    machine=$(uname -m)
    [ "$machine" = "$ARCH" ] || die 4 "this machine is $machine, the environment is built for $ARCH" \
        "unpack it on a $ARCH machine, or pack the environment for $machine"
    [ -n "$GLIBC" ] || die 4 "cannot find the glibc version of this machine (no runnable libc.so.6)" \
        "the environment needs glibc >= $FLOOR"
    ver_ge "$GLIBC" "$FLOOR" || die 4 "this machine has glibc $GLIBC, the environment needs glibc >= $FLOOR" \
        "unpack it on a newer Linux, or pack it from packages built for an older glibc"
}

check_dest() { # checks 4 to 6
    case $NAME in '' | . | .. | */*) die 5 "bad environment name '$NAME'" \
        "give --env-name a plain folder name" ;; esac
    resolve_dir
    DEST=${ADIR%/}/$NAME
    case $DEST in *"$NL"* | *'"'* | *'$'* | *'`'* | *'\'*)
        die 5 "the destination $DEST holds a newline, \", \$, \` or \\" \
            "choose a -o DIR and --env-name without them" ;;
    esac
    len=$(printf '%s' "$DEST" | wc -c | tr -d ' ')
    [ "$len" -le "$PMAX" ] || die 5 "the destination $DEST is $len bytes long, the environment accepts at most $PMAX" \
        "choose a shorter -o DIR or --env-name"
    [ -w "$BASE" ] && [ -x "$BASE" ] || die 5 "cannot write into $BASE" \
        "choose a -o DIR you can write to, or run as a user who can"
    check_existing
    avail=$(free_kib "$BASE")
    if ! isnum "$avail"; then
        printf 'portenv: warning: cannot read the free space of %s (df -kP), not checked\n' "$BASE" >&2
    elif [ "$avail" -lt "$KIB" ]; then
        die 6 "$BASE has $avail KiB free, the environment needs $KIB KiB" \
            "free some space, or choose a -o DIR on another file system"
    fi
}

check_integrity() { # check 7
    got=$(rd $((OFF + 5120)) "$PSIZE" | sha256sum | sed 's/ .*//')
    [ "$got" = "$PSHA" ] || die 7 "the payload of $F is damaged (sha256 $got, expected $PSHA)" \
        "copy the archive again"
    [ -n "$WANT_SHA" ] || return 0
    got=$(sha256sum <"$F" | sed 's/ .*//')
    [ "$got" = "$WANT_SHA" ] || die 7 "the sha256 of $F is $got, not the expected $WANT_SHA" \
        "copy the archive again, and compare with the sha256 published beside it"
}

install_env() { # extract, relocate, rename into place
    [ "$ADIR" = "$BASE" ] || MADE=1
    mkdir -p "$ADIR" || die 5 "cannot create $ADIR" "check permissions"
    LOCK=$ADIR/.portenv-lock.$NAME
    take_lock
    sweep
    check_existing
    TMP=$ADIR/.portenv-tmp.$NAME.$$
    mkdir "$TMP" || die 5 "cannot create $TMP" "check permissions"
    st=$LOCK/status
    : >"$st"
    rd $((OFF + 5120)) "$PSIZE" | { gzip -dc || echo "gzip exit $?" >>"$st"; } |
        { tar -xf - -C "$TMP" || echo "tar exit $?" >>"$st"; }
    [ ! -s "$st" ] || die 8 "extracting into $TMP failed ($(sed -n 'H;${x;s/^\n//;s/\n/, /g;p;}' "$st"))" \
        "see the messages above: check the free space of $ADIR"
    got=$(find "$TMP" | wc -l | tr -d ' ')
    [ "$((got - 1))" -ge "$FILES" ] || die 8 "extracted $((got - 1)) of $FILES files into $TMP" \
        "see the messages above: check the free space of $ADIR"
    [ -x "$TMP/$PY" ] || die 8 "the environment has no runnable $PY" "pack the environment again"
    "$TMP/$PY" -E -s -B "$TMP/.portenv/relocate.py" --to "$DEST" >&2 ||
        die 8 "relocating the environment to $DEST failed (exit $?)" \
            "see the messages above; $DEST was left as it was"
    check_existing
    if [ -e "$DEST" ] || [ -L "$DEST" ]; then
        OLD=$ADIR/.portenv-old.$NAME.$$
        mv "$DEST" "$OLD" || die 5 "cannot move the old $DEST aside" "check permissions"
    fi
    mv "$TMP" "$DEST" || die 8 "cannot rename $TMP to $DEST" "check permissions"
    if [ -e "$DEST/${TMP##*/}" ]; then # DEST appeared meanwhile: mv put TMP inside it
        mv "$DEST/${TMP##*/}" "$TMP"
        die 5 "$DEST appeared during the unpack" "remove it, or pass --force"
    fi
    TMP=
    MADE=
    [ -z "$OLD" ] || rm -rf "$OLD"
    OLD=
}

main() {
    parse_args "$@"
    missing=
    for t in tail head tr sed wc tar gzip sha256sum uname df mkdir mv rm find; do
        command -v "$t" >/dev/null 2>&1 || missing="$missing $t"
    done
    [ -z "$missing" ] || die 4 "this machine lacks the commands:$missing" \
        "install them (busybox provides all of them)"
    open_archive
    if [ -n "$INFO" ]; then
        printf '%s\n' "$META" | sed '/^$/d'
        exit 0
    fi
    if [ -n "$LIST" ]; then
        check_integrity
        rd $((OFF + 5120)) "$PSIZE" | gzip -dc | tar -xOf - .portenv/packages.txt ||
            die 3 "$F lists no packages" "it was made by an older portenv: use --info"
        exit 0
    fi
    check_target
    check_dest
    check_integrity
    if [ -n "$CHECK" ]; then
        printf 'portenv: all checks passed, %s can be unpacked into %s\n' "$F" "$DEST" >&2
        exit 0
    fi
    TMP='' OLD='' LOCKED='' MADE='' LOCK=''
    trap cleanup EXIT
    trap 'exit 129' HUP
    trap 'exit 130' INT
    trap 'exit 143' TERM
    install_env
    printf 'portenv: unpacked %s files into %s\n' "$FILES" "$DEST" >&2
    exit 0
}

main "$@"
exit
