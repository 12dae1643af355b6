#!/bin/sh
{ PORTENV_SIZE=0;                [ "$PORTENV_SIZE" = 0 ] || [ "$(dd if="$0" bs=1 skip=$((PORTENV_SIZE - 1)) count=2 2>/dev/null | wc -c)" -eq 1 ] || { printf 'error: %s is truncated or damaged: it is not %s bytes long\n  hint: copy it again, and run it as: sh FILE\n' "$0" "$PORTENV_SIZE" >&2; exit 3; }; }
# portenv-unpack: unpack a portenv archive (docs/format.md) on a machine that has
# only sh, tar, gzip and glibc, or run a command of it from a per-user cache. Line 2 refuses
# a file that is not exactly as long as portenv wrote it, before the shell reads any further
# (a cut file would otherwise end after some function definitions and exit 0); cut inside
# its braces, it is a syntax error. As the head of a self-extracting env.sh, the three lines
# below hold the byte offset of the archive in this file (0 means standalone), the payload's
# sha256 (the cache key) and the command the file runs (blank: none).
PORTENV_EMBEDDED_OFFSET=0000000000
PORTENV_PAYLOAD_SHA256=0000000000000000000000000000000000000000000000000000000000000000
PORTENV_ENTRY='                                                                                                                        '
# POSIX sh only (dash, bash, busybox ash). Writes nothing before every check passed. The shell
# that runs a command from the cache sets only PORTENV_* variables (a first run unpacks in a
# subshell) and puts LC_ALL back, so the command gets the user's environment as it was.
PORTENV_LC=${LC_ALL-} PORTENV_LC_SET=${LC_ALL+1}

die() { # CODE WHAT [HINT]
    printf 'error: %s\n' "$2" >&2
    [ -z "$3" ] || printf '  hint: %s\n' "$3" >&2
    exit "$1"
}

cache_root() { # sets PORTENV_R: $PORTENV_CACHE, else the XDG cache's portenv folder, else
    # (no usable HOME) a folder of this user in TMPDIR
    if [ -n "${PORTENV_CACHE-}" ]; then
        PORTENV_R=$PORTENV_CACHE
    elif case ${XDG_CACHE_HOME-} in /*) ;; *) false ;; esac then
        PORTENV_R=$XDG_CACHE_HOME/portenv
    elif case ${HOME-} in /*) [ -w "$HOME/.cache" ] || [ -w "$HOME" ] ;; *) false ;; esac then
        PORTENV_R=${HOME%/}/.cache/portenv
    else
        PORTENV_R=${TMPDIR:-/tmp}/portenv-cache-$(id -u)
    fi
    case $PORTENV_R in /*) ;; *) PORTENV_R=$PWD/$PORTENV_R ;; esac
}

cache_safe() { # ROOT [ENTRY]: both are this user's and writable by no other (else exit 5)
    for PORTENV_Y in "$1" ${2:+"$2"}; do
        [ -O "$PORTENV_Y/" ] || die 5 "the cache folder $PORTENV_Y is not yours (another user owns it)" \
            "nothing was run from it; set PORTENV_CACHE to a folder that only you can write to"
    done
    PORTENV_X=$(LC_ALL=C ls -ldn "$1/" ${2:+"$2/"}) || die 5 "cannot read the cache folder $1" "check its permissions"
    while read -r PORTENV_Y _ _ _ _ _ _ _ PORTENV_Z; do
        case $PORTENV_Y in ?????w* | ????????w*)
            die 5 "the cache folder ${PORTENV_Z%/} is writable by other users" \
                "nothing was run from it; chmod go-w ${PORTENV_Z%/}, or set PORTENV_CACHE to a folder that only you can write to" ;;
        esac
    done <<EOF
$PORTENV_X
EOF
}

run_cached() { # KEY MODE ARGS...: exec a command from the cache entry KEY when it is
    # complete (its marker is written last) and safe; return 1 when there is no such entry.
    # MODE entry: ARGS go to the file's entry; MODE run: ARGS are --run CMD ARGS.
    [ "$1" != 0000000000000000000000000000000000000000000000000000000000000000 ] || return 1
    cache_root
    PORTENV_E=$PORTENV_R/$1
    [ -f "$PORTENV_E/.portenv/cache-ready" ] || return 1
    cache_safe "$PORTENV_R" "$PORTENV_E"
    if [ "$2" = entry ]; then
        shift 2
        set -f
        # shellcheck disable=SC2086 # the entry's words (a command and its options)
        set -- $PORTENV_ENTRY "$@"
        set +f
    else
        shift 3
    fi
    PORTENV_X=$1
    shift
    case $PORTENV_X in
    */*) ;;
    *) [ ! -f "$PORTENV_E/bin/$PORTENV_X" ] || [ ! -x "$PORTENV_E/bin/$PORTENV_X" ] ||
        PORTENV_X=$PORTENV_E/bin/$PORTENV_X ;;
    esac
    if [ -n "$PORTENV_LC_SET" ]; then LC_ALL=$PORTENV_LC; else unset LC_ALL; fi
    exec "$PORTENV_X" "$@"
}

if [ -z "${PORTENV-}" ]; then # a warm start execs here, before the shell reads the rest
    case $PORTENV_ENTRY in
    *[!\ ]*) run_cached "$PORTENV_PAYLOAD_SHA256" entry "$@" ;;
    *) [ "${1-}" != --run ] || [ $# -lt 2 ] || run_cached "$PORTENV_PAYLOAD_SHA256" run "$@" ;;
    esac
fi

LC_ALL=C
export LC_ALL
PORTENV_NL='
'

# shellcheck disable=SC2016 # the help names variables, it does not expand them
usage() {
    printf '%s\n' \
        'usage: sh portenv-unpack ARCHIVE.tar [-o DIR] [options]' \
        '       sh env.sh [-o DIR] [options]' \
        '       sh env.sh --run CMD [ARGS...]' \
        '' \
        'Unpack the environment into DIR/NAME and relocate it there, or run a command of it.' \
        '' \
        '  -o, --output DIR   parent folder, created if missing (default: .)' \
        '  --env-name NAME    folder name under DIR (default: the archive'"'"'s env_name)' \
        '  --force            replace an existing environment at DIR/NAME' \
        '  -j, --jobs N       decompress (and compile) on N cores (default: all, as nproc' \
        '                     counts)' \
        '  --compile          also write the bytecode of every module that has none, for' \
        '                     users who cannot write into the environment' \
        '  --sha256 HEX       also require this sha256 of the whole archive file' \
        '  --check            run every check, write nothing, exit 0 if all pass' \
        '  --info             print the archive'"'"'s meta block and exit' \
        '  --list             verify the payload, then list the packages inside' \
        '  --run CMD [ARGS]   run CMD (from the environment'"'"'s bin/, else as given) from' \
        '                     the per-user cache; the first run unpacks it there' \
        '  --list-cache       list the entries of the cache' \
        '  --prune [--all]    remove the cache'"'"'s entries but this file'"'"'s (--all: every one)' \
        '  -h, --help         show this help' \
        '' \
        'A file packed with --entry runs its command: ./tool.sh ARGS. PORTENV=unpack makes it' \
        'take the options above (PORTENV=unpack sh tool.sh -o DIR); PORTENV=info, list, check,' \
        'list-cache, prune and help stand for those options. The cache is $PORTENV_CACHE, else' \
        '${XDG_CACHE_HOME:-$HOME/.cache}/portenv, else ${TMPDIR:-/tmp}/portenv-cache-UID.' \
        '' \
        'exit codes: 0 ok, 2 usage, 3 bad archive, 4 incompatible machine,' \
        '5 destination problem, 6 not enough disk space, 7 sha256 mismatch,' \
        '8 extraction or relocation failed'
}

rd() { # OFFSET COUNT: COUNT bytes of the archive from byte OFFSET (0-based)
    tail -c +$(($1 + 1)) "$F" 2>/dev/null | head -c "$2"
}

holds() { # N: the archive file has N bytes or more (dd seeks: no read of what comes before)
    [ "$1" -le 0 ] || [ "$(dd if="$F" bs=1 skip=$(($1 - 1)) count=1 2>/dev/null | wc -c)" -eq 1 ]
}

phase() { # WHAT: one line per phase, for a person at a terminal waiting for a large env
    [ -z "$PROGRESS" ] || printf 'portenv: %s ...\n' "$1" >&2
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

read_head() { # the two ustar headers and the meta block, read in one pass
    rd "$OFF" 5120 | tr '\000\n' '\001\002' | awk '
        function field(at, len,   v) { v = substr(s, at + 1, len); sub(/\001.*/, "", v); return v }
        function octal(v,   i, n) {
            n = 0
            for (i = 1; i <= length(v); i++) if (substr(v, i, 1) ~ /[0-7]/) n = n * 8 + substr(v, i, 1)
            return n
        }
        function member(at) { # "NAME SIZE" of the ustar header at AT, or "-" without the magic
            if (field(at + 257, 5) != "ustar") return "-"
            return sprintf("%s %.0f", field(at, 100), octal(field(at + 124, 12)))
        }
        { s = s $0 }
        END {
            printf "@1=%s\n@2=%s\n", member(0), member(4608)
            m = substr(s, 513, 4096)
            gsub(/\001/, "", m)
            gsub(/\002/, "\n", m)
            printf "%s\n", m
        }'
}

libc_version() { # LIBC: the glibc version that executing LIBC prints
    [ -f "$1" ] || return 1
    v=$("$1" 2>/dev/null | sed -n '1s/.* version \([0-9][0-9.]*[0-9]\).*/\1/p')
    [ -n "$v" ] && printf '%s\n' "$v"
}

glibc_version() { # the target's glibc version: getconf's, else run libc.so.6 beside the loader
    v=$(getconf GNU_LIBC_VERSION 2>/dev/null) && [ -n "${v#glibc }" ] && {
        printf '%s\n' "${v#glibc }"
        return 0
    }
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
    return 1
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

check_existing() { # check 5: DEST is free, or --force and DEST is an env (portenv's or conda's)
    [ -e "$DEST" ] || [ -L "$DEST" ] || return 0
    [ -n "$FORCE" ] || die 5 "$DEST already exists" \
        "pass --force to replace it, or choose another -o DIR or --env-name"
    [ -L "$DEST" ] || ! mount_point "$DEST" || die 5 "$DEST is a mount point: --force cannot replace it" \
        "unpack into a folder inside it (-o $DEST), or choose another -o DIR"
    if [ -d "$DEST" ] && [ ! -L "$DEST" ]; then
        for m in .portenv conda-meta; do
            [ -d "$DEST/$m" ] && [ ! -L "$DEST/$m" ] && return 0
        done
        is_empty_dir "$DEST" && return 0
    fi
    die 5 "$DEST exists and is not an environment: --force will not replace it" \
        "remove it yourself, or choose another -o DIR or --env-name"
}

mount_of() { # FOLDER: the options, a newline, then the mount point of the file system it
    # lies on, from /proc/mounts (nothing when it cannot tell)
    [ -r /proc/mounts ] || return 0
    P=$1 awk '
        function unescape(s) {
            gsub(/\\040/, " ", s); gsub(/\\011/, "\t", s); gsub(/\\012/, "\n", s); gsub(/\\134/, "\\", s)
            return s
        }
        {
            m = unescape($2)
            if (m != "/" && ENVIRON["P"] != m && index(ENVIRON["P"], m "/") != 1) next
            if (length(m) >= length(best)) { best = m; opts = $4 }
        }
        END { if (best != "") printf "%s\n%s\n", opts, best }' /proc/mounts 2>/dev/null
}

read_only_mount() { # FOLDER: on a file system mounted read-only (busybox's [ -w ] is true for
    m=$(mount_of "$1") # root even there)
    case ,${m%%"$PORTENV_NL"*}, in *,ro,*) return 0 ;; esac
    return 1
}

mount_point() { # FOLDER: a file system is mounted right there
    m=$(mount_of "$1")
    [ -n "$m" ] && [ "${m#*"$PORTENV_NL"}" = "$1" ]
}

free_kib() { # FOLDER: free KiB on its file system (empty if df fails)
    df -kP "$1" 2>/dev/null | {
        avail=
        while read -r _fs _total _used free _rest; do avail=$free; done
        printf '%s\n' "$avail"
    }
}

sweep() { # after taking the lock: remove what dead unpacks into DEST left behind
    rmdir "$LOCK.break" 2>/dev/null
    for t in "$ADIR"/.portenv-tmp."$NAME".*; do
        p=${t#"$ADIR/.portenv-tmp.$NAME."}
        isnum "$p" && ! alive "$p" && rm -rf "$t"
    done
    for o in "$ADIR"/.portenv-old."$NAME".*; do
        p=${o#"$ADIR/.portenv-old.$NAME."}
        { isnum "$p" && ! alive "$p"; } || continue
        if [ -e "$DEST" ] || [ -L "$DEST" ]; then
            rm -rf "$o"
        elif mv "$o" "$DEST"; then
            printf 'portenv: restored %s, left aside by an interrupted --force unpack\n' "$DEST" >&2
        fi
    done
}

take_lock() { # [WAIT]: take DIR/.portenv-lock.NAME; a live owner is exit 5, or with WAIT
    # is waited for. A lock whose owner is dead, or that stays without a pid for a second (its
    # owner died before writing it), is broken by one process at a time (.break), which reads
    # the pid again under it: a lock taken meanwhile by a live unpack is never removed.
    seen='' gone=0
    while ! mkdir "$LOCK" 2>/dev/null; do
        if [ ! -d "$LOCK" ]; then # released meanwhile (again and again when first runs that
            # find the entry made hold it for an instant each), or never creatable
            gone=$((gone + 1))
            [ "$gone" -lt 100 ] || die 5 "cannot create the lock $LOCK" "check that $ADIR is writable"
            continue
        fi
        pid=$(sed -n 1p "$LOCK/pid" 2>/dev/null)
        if isnum "$pid" && alive "$pid"; then
            [ -n "$1" ] || die 5 "another unpack into $DEST is running (pid $pid)" \
                "wait for it to finish, or remove $LOCK if no unpack is running"
            [ -n "$seen" ] || [ -z "$PROGRESS" ] ||
                printf 'portenv: waiting for pid %s, which is unpacking into %s\n' "$pid" "$DEST" >&2
            seen=live
            sleep 1
        elif ! isnum "$pid" && [ "$seen" != "empty" ]; then # its owner may be writing the pid
            seen=empty
            sleep 1
        elif mkdir "$LOCK.break" 2>/dev/null; then
            [ "$(sed -n 1p "$LOCK/pid" 2>/dev/null)" != "$pid" ] || rm -rf "$LOCK"
            rmdir "$LOCK.break"
            seen=
        elif [ "$seen" = breaking ]; then # a breaker died in there: breaking takes no second
            rmdir "$LOCK.break" 2>/dev/null
        else
            seen=breaking
            sleep 1
        fi
    done
    LOCKED=1
    printf '%s\n' "$$" >"$LOCK/pid" || die 5 "cannot write into $LOCK" "check free space and permissions"
}

compile_opts() { # what --compile (and -j) asks of the relocation, or of an update's engine
    [ -z "${COMPILE-}" ] || printf '%s\n' "--compile${JOBS:+ --jobs=$JOBS}"
}

# shellcheck disable=SC2317 # it runs from the EXIT trap
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
    ARCHIVE='' DIR=. NAME='' FORCE='' CHECK='' INFO='' LIST='' WANT_SHA='' NAME_SET='' JOBS=''
    LIST_CACHE='' PRUNE='' ALL='' CACHE='' ADIR='' COMPILE=''
    while [ $# -gt 0 ]; do
        case $1 in
        -h | --help) usage; exit 0 ;;
        -o | --output | --env-name | --sha256 | -j | --jobs)
            [ $# -ge 2 ] || die 2 "option $1 needs a value" "see --help"
            a=$1=$2
            shift 2
            set -- "$a" "$@"
            continue ;;
        -o=* | --output=*) DIR=${1#*=} ;;
        --env-name=*) NAME=${1#*=} NAME_SET=1 ;;
        --sha256=*) WANT_SHA=$(printf '%s\n' "${1#*=}" | tr A-F a-f) ;;
        -j=* | --jobs=*) JOBS=${1#*=}; { isnum "$JOBS" && [ "$JOBS" -ge 1 ]; } ||
            die 2 "--jobs needs a number of cores (1 or more)" "see --help" ;;
        --force) FORCE=1 ;;
        --compile) COMPILE=1 ;;
        --check) CHECK=1 ;;
        --info) INFO=1 ;;
        --list) LIST=1 ;;
        --list-cache) LIST_CACHE=1 ;;
        --prune) PRUNE=1 ;;
        --all) ALL=1 ;;
        --run) die 2 "--run comes first, before the command and its arguments" \
            "sh env.sh --run CMD [ARGS...]" ;;
        -?*) die 2 "unknown option: $1" "see --help" ;;
        *)
            [ -z "$ARCHIVE" ] || die 2 "unexpected argument: $1" "give one ARCHIVE (see --help)"
            ARCHIVE=$1 ;;
        esac
        shift
    done
    [ -n "$DIR" ] || die 2 "-o needs a non-empty DIR" "see --help"
    [ -z "$ALL" ] || [ -n "$PRUNE" ] || die 2 "--all goes with --prune" "see --help"
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
    { [ -f "$F" ] && [ -r "$F" ]; } || die 3 "cannot read $F" \
        "give the path of a readable file (run env.sh as: sh env.sh -o DIR)"
    if [ "$OFF" = 0 ] && [ "$(rd 0 9 | tr -d '\000')" = "#!/bin/sh" ]; then # an env.sh given as ARCHIVE
        OFF=$(rd 0 1024 | sed -n 's/^PORTENV_EMBEDDED_OFFSET[=]0*\([1-9][0-9]*\)$/\1/p')
        OFF=${OFF:-0}
    fi
    what="$F is not a portenv archive"
    [ "$OFF" = 0 ] || what="$F carries no portenv archive"
    { holds $((OFF + 512)) && parse_head && [ "$M1" = "portenv/meta 4096" ]; } ||
        die 3 "$what" "give an env.tar or env.sh made by portenv"
    holds $((OFF + 5120)) || die 3 "$F is truncated (shorter than $((OFF + 5120)) bytes)" "copy it again"
    [ "$FORMAT" = 1 ] || [ "$FORMAT" = update1 ] || die 3 "$F has archive format '$FORMAT', this unpacker knows format 1" \
        "unpack it with the portenv-unpack of the portenv version that made it"
    case $COMPRESSION in
    gzip) UNZIP='gzip -dc' EXT=gz ;;
    zstd) UNZIP='zstd -dc' EXT=zst ;;
    *) die 3 "$F uses compression '$COMPRESSION'" \
        "this unpacker knows gzip and zstd only: unpack it with a newer portenv-unpack" ;;
    esac
    bad=
    for k in "$PSIZE" "$FILES" "$KIB" "$PMAX"; do isnum "$k" || bad=1; done
    case $PSHA in *[!0-9a-f]*) bad=1 ;; esac
    [ ${#PSHA} = 64 ] || bad=1
    case $FLOOR in '' | *[!0-9.]* | .* | *. | *..*) bad=1 ;; esac
    case $PY in '' | /* | .. | ../* | */.. | */../*) bad=1 ;; esac
    case $PCUTS in *[!0-9:\ ]*) bad=1 ;; esac
    [ -n "$ARCH" ] && [ -n "$LIBC" ] || bad=1
    if [ -n "$USIZE$USHA" ]; then # the decompressor it carries, after the payload
        isnum "$USIZE" && [ ${#USHA} = 64 ] && [ "$COMPRESSION" = zstd ] || bad=1
        case $USHA in *[!0-9a-f]*) bad=1 ;; esac
        UNZIP=unzstd UOFF=$((OFF + 5120 + PSIZE + (512 - PSIZE % 512) % 512 + 512))
    fi
    [ -z "$bad" ] || die 3 "$F has a damaged meta block" "copy it again, or pack it again"
    [ "$M2" = "portenv/payload.tar.$EXT $PSIZE" ] ||
        die 3 "$F has no $COMPRESSION payload where format 1 puts it" "copy it again, or pack it again"
    end=$((OFF + 5120 + PSIZE))
    [ "$UNZIP" != unzstd ] || end=$((UOFF + USIZE))
    holds "$end" || die 3 "$F is truncated (shorter than $end bytes)" "copy it again"
    [ "$F" != "$0" ] || [ "$PORTENV_PAYLOAD_SHA256" = "$PSHA" ] ||
        [ "$PORTENV_PAYLOAD_SHA256" = 0000000000000000000000000000000000000000000000000000000000000000 ] ||
        die 3 "$F is damaged: its header and its meta block disagree on the payload's sha256" \
            "copy it again"
    [ "$NAME_SET" ] || NAME=$ENV_NAME
    [ "$NAME_SET" ] || [ -n "$NAME" ] || NAME='env'
}

parse_head() { # sets M1, M2 (member "NAME SIZE"), META and one variable per meta key
    head=$(read_head) || return 1
    META='' M1='' M2='' FORMAT='' COMPRESSION='' PSIZE='' PSHA='' PY='' FILES='' KIB='' PMAX=''
    FLOOR='' ARCH='' LIBC='' ENV_NAME='' PCUTS='' USIZE='' USHA=''
    while IFS= read -r line; do
        v=${line#*=}
        case $line in # the first line for a key counts, as in docs/format.md
        @1=*) M1=$v ;;
        @2=*) M2=$v ;;
        format=*) [ -n "$FORMAT" ] || FORMAT=$v ;;
        compression=*) [ -n "$COMPRESSION" ] || COMPRESSION=$v ;;
        payload_size=*) [ -n "$PSIZE" ] || PSIZE=$v ;;
        payload_sha256=*) [ -n "$PSHA" ] || PSHA=$v ;;
        python=*) [ -n "$PY" ] || PY=$v ;;
        files=*) [ -n "$FILES" ] || FILES=$v ;;
        unpacked_kib=*) [ -n "$KIB" ] || KIB=$v ;;
        prefix_max=*) [ -n "$PMAX" ] || PMAX=$v ;;
        glibc_floor=*) [ -n "$FLOOR" ] || FLOOR=$v ;;
        arch=*) [ -n "$ARCH" ] || ARCH=$v ;;
        libc=*) [ -n "$LIBC" ] || LIBC=$v ;;
        env_name=*) [ -n "$ENV_NAME" ] || ENV_NAME=$v ;;
        payload_cuts=*) [ -n "$PCUTS" ] || PCUTS=$v ;;
        unzstd_size=*) [ -n "$USIZE" ] || USIZE=$v ;;
        unzstd_sha256=*) [ -n "$USHA" ] || USHA=$v ;;
        esac
        case $line in @[12]=*) ;; *) META=$META$line$PORTENV_NL ;; esac
    done <<EOF
$head
EOF
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
    case $NAME in '' | . | .. | */* | -*) die 5 "bad environment name '$NAME'" \
        "give --env-name a plain folder name" ;; esac
    resolve_dir
    DEST=${ADIR%/}/$NAME
    case $DEST in *"$PORTENV_NL"* | *'"'* | *'$'* | *'`'* | *\\*)
        die 5 "the destination $DEST holds a newline, \", \$, \` or \\" \
            "choose a -o DIR and --env-name without them" ;;
    esac
    case $DEST in # lengths count bytes: wc for anything beyond printable ASCII
    *[!\ -~]*) len=$(printf '%s' "$DEST" | wc -c | tr -d ' ') ;;
    *) len=${#DEST} ;;
    esac
    [ "$len" -le "$PMAX" ] || die 5 "the destination $DEST is $len bytes long, the environment accepts at most $PMAX" \
        "choose a shorter -o DIR or --env-name"
    { [ -w "$BASE" ] && [ -x "$BASE" ] && ! read_only_mount "$BASE"; } || die 5 "cannot write into $BASE" \
        "choose a -o DIR you can write to, or run as a user who can"
    check_existing
    avail=$(free_kib "$BASE")
    if ! isnum "$avail"; then
        printf 'portenv: warning: cannot read the free space of %s (df -kP), not checked\n' "$BASE" >&2
    elif [ "$avail" -lt "$KIB" ]; then
        die 6 "$BASE has $avail KiB free, the environment needs $KIB KiB" \
            "free some space, or choose a -o DIR on another file system"
    fi
    plan_cuts "$avail"
}

plan_cuts() { # AVAIL_KIB: sets CUTS, the payload offsets where it is cut so that each piece is
    # decompressed on a core of its own (none: one stream). The pieces after the first are
    # decompressed into files beside the destination meanwhile, so they must fit in the space
    # left beside the environment, and in half the memory the kernel has for caching them
    # (else they would reach the disk and be read back); payload_cuts is checked whatever the
    # cores.
    CUTS=
    [ -n "$PCUTS" ] || return 0
    n=$JOBS
    [ -n "$n" ] || n=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null)
    isnum "$n" || n=1
    spare=-1
    ! isnum "$1" || spare=$(($1 - KIB))
    CUTS=$(printf '%s\n' "$PCUTS" | awk -v n="$n" -v size="$PSIZE" -v spare="$spare" '
        function far(x) { return x < 0 ? -x : x } # no ^ or abs(): some busybox awk lack them
        {
            for (i = 1; i <= NF; i++) {
                if ($i !~ /^[0-9]+:[0-9]+$/) bad = 1
                split($i, f, ":")
                c[i] = f[1] + 0
                u[i] = f[2] + 0
                if (c[i] <= c[i - 1] || u[i] <= u[i - 1]) bad = 1
            }
            m = NF
        }
        END {
            if (bad || m < 1 || c[m] != size) { print "bad"; exit }
            while ((getline line < "/proc/meminfo") > 0)
                if (line ~ /^MemAvailable:/) { split(line, f, " "); memory = f[2] / 2 }
            if (memory != "" && memory < spare) spare = memory
            last = 0
            for (k = 1; k < n && k < m; k++) {
                goal = u[m] * k / n
                best = 0
                for (i = 1; i < m; i++)
                    if (u[i] > u[last] && (!best || far(u[i] - goal) < far(u[best] - goal))) best = i
                if (!best) break
                cut[++cuts] = best
                last = best
            }
            if (!cuts || (u[m] - u[cut[1]]) / 1024 + 64 > spare) exit
            for (k = 1; k <= cuts; k++) printf "%.0f ", c[cut[k]]
        }')
    [ "$CUTS" != bad ] || die 3 "$F has a damaged meta block (payload_cuts)" "copy it again, or pack it again"
}

payload_sha256() { # the sha256 of the payload, as 64 hex digits
    got=$(rd $((OFF + 5120)) "$PSIZE" | sha256sum) && printf '%s\n' "${got%% *}"
}

check_payload() { # GOT: check 7, the payload's sha256
    [ "$1" = "$PSHA" ] || die 7 "the payload of $F is damaged (sha256 ${1:-unknown}, expected $PSHA)" \
        "copy the archive again"
}

check_unzstd() { # check 7 for the decompressor a zstd archive carries
    [ "$UNZIP" = unzstd ] || return 0
    got=$(rd "$UOFF" "$USIZE" | sha256sum)
    [ "${got%% *}" = "$USHA" ] || die 7 "the decompressor in $F is damaged (sha256 ${got%% *}, expected $USHA)" \
        "copy the archive again"
}

install_unzstd() { # DIR: the decompressor checked, then gunzipped into DIR as UZ
    [ "$UNZIP" = unzstd ] || return 0
    check_unzstd
    UZ=$1/portenv-unzstd
    { rd "$UOFF" "$USIZE" | gzip -dc >"$UZ" && chmod 700 "$UZ"; } ||
        die 5 "cannot write the decompressor into $1" "check free space and permissions"
}

unzstd_scratch() { # the decompressor where nothing is unpacked (--list, an update's --check):
    # in the first of TMPDIR, the user's cache, /dev/shm and the destination's folder where it
    # runs (a /tmp mounted noexec cannot run it)
    [ "$UNZIP" = unzstd ] || return 0
    tried=
    trap 'rm -rf "$UZD"' EXIT
    for d in "${TMPDIR:-/tmp}" :cache /dev/shm ${ADIR:+"$ADIR"}; do
        c=
        [ "$d" != :cache ] || { cache_root; d=$PORTENV_R c=1; }
        tried=${tried:+$tried, }$d
        [ -z "$c" ] || { mkdir -p "$d" && (cache_safe "$d"); } 2>/dev/null || continue
        UZD=$d/.portenv-unzstd.$$
        mkdir -m 700 "$UZD" 2>/dev/null || continue
        install_unzstd "$UZD"
        # an empty zstd frame: only a decompressor that runs here turns it into nothing
        printf '\050\265\057\375\040\000\001\000\000' | "$UZ" >/dev/null 2>&1 && return 0
        rm -rf "$UZD"
    done
    die 5 "found no folder to run the decompressor from (tried $tried: not writable, or mounted noexec)" \
        "set TMPDIR to a folder you can write to and run programs from"
}

# shellcheck disable=SC2317 # it runs as $UNZIP
unzstd() { # the payload's zstd on stdin, its tar on stdout
    "$UZ"
}

check_whole_file() { # --sha256: the whole file, before anything is extracted
    [ -n "$WANT_SHA" ] || return 0
    got=$(sha256sum <"$F" | sed 's/ .*//')
    [ "$got" = "$WANT_SHA" ] || die 7 "the sha256 of $F is $got, not the expected $WANT_SHA" \
        "copy the archive again, and compare with the sha256 published beside it"
}

slot() { # FILE: take its disk blocks now, so that a disk filled by tar cannot lose what
    # is written into it later with 1<> (which overwrites without truncating)
    printf '%-255s\n' '' >"$1" || die 5 "cannot write into $LOCK" "check free space and permissions"
}

said() { # FILE: sets SAID to what was written into the slot (its first line, trimmed)
    SAID=
    read -r SAID <"$1" || :
}

names() { # tar's listing on stdin -> one line: "COUNT" or "COUNT PROBLEM"
    awk '{
            n = $0
            while (sub(/^\.\//, "", n)) {}
            sub(/\/+$/, "", n)
            if (bad == "" && (n ~ /^\// || ("/" n "/") ~ /\/\.\.\//))
                bad = "a member outside the environment: " $0
            if (bad == "" && seen[n]++) bad = "the member " $0 " twice"
        }
        END { printf "%d %s\n", NR, substr(bad, 1, 200) }'
}

unzip_piece() { # K FROM TO: the payload's bytes FROM to TO decompressed; failures go to slot K
    # shellcheck disable=SC2086 # UNZIP is a command and its option
    rd $((OFF + 5120 + $2)) $(($3 - $2)) |
        { $UNZIP 2>>"$LOCK/unzip.err" || echo "${UNZIP%% *} exit $?" 1<>"$LOCK/unzip.$1"; }
}

tar_stream() { # the payload's tar: the first piece straight from the archive, while the others
    # are decompressed into files on the other cores, then those files in order
    # shellcheck disable=SC2086 # CUTS is a list of numbers
    set -- $CUTS "$PSIZE"
    first=$1 from=$1 k=1 pids=
    shift
    for to; do
        k=$((k + 1))
        unzip_piece "$k" "$from" "$to" >"$LOCK/piece.$k" &
        pids="$pids $!"
        from=$to
    done
    unzip_piece 1 0 "$first"
    k=1
    for p in $pids; do
        k=$((k + 1))
        wait "$p"
        cat "$LOCK/piece.$k"
        rm -f "$LOCK/piece.$k"
    done
}

extract() { # into TMP, hashing the payload meanwhile; the small results go to slots
    # shellcheck disable=SC2086 # CUTS is a list of numbers
    set -- $CUTS
    PIECES=$(($# + 1))
    k=0
    while [ $k -lt "$PIECES" ]; do
        k=$((k + 1))
        slot "$LOCK/unzip.$k"
    done
    for s in sha256 tar names; do slot "$LOCK/$s"; done
    payload_sha256 1<>"$LOCK/sha256" &
    tar_stream |
        { tar -xvf - -C "$TMP" 2>"$LOCK/tar.err" || echo "tar exit $?" 1<>"$LOCK/tar"; } |
        names 1<>"$LOCK/names"
    wait
    said "$LOCK/sha256"
    [ -n "$SAID" ] || SAID=$(payload_sha256)
    check_payload "$SAID"
}

refuse() { # WHAT: a member a portenv payload never holds (exit 3)
    die 3 "$F holds $1" "it was not made by portenv, or was altered: do not unpack it"
}

check_names() { # absolute, '..' and duplicate member names, from tar's own listing
    w=
    [ ! -s "$LOCK/tar.err" ] || w=$(sed -n '/[Rr]emoving leading/{p;q;}' "$LOCK/tar.err")
    [ -z "$w" ] || refuse "a member outside the environment (${w#tar: })"
    said "$LOCK/names"
    LISTED=$SAID
    w=${LISTED#* }
    [ "$w" = "$LISTED" ] || refuse "$w"
    LISTED=${LISTED%% *}
}

walk() { # one walk of TMP: the path of what a payload never holds (a device, fifo, socket,
    # set-id or sticky mode, hard link, or a name with a newline or ' -> '), and "ls -ldn"
    # lines (which never start with a /) for the symlinks
    find "$TMP" \( -type b -o -type c -o -type p -o -type s -o -perm -4000 -o -perm -2000 \
        -o -perm -1000 -o \( ! -type d -links +1 \) -o -name "*$PORTENV_NL*" -o -name '* -> *' \) \
        -print -o -type l -exec ls -ldn {} +
}

links() { # LISTING: every symlink in TMP as "PATH -> TARGET", one a line
    # ls is one process for all links, but some ls print '?' for bytes they deem unprintable:
    # when a line holds a '?', read every link exactly, one readlink each (slower, rare)
    case $1 in
    *'?'*)
        command -v readlink >/dev/null 2>&1 ||
            die 4 "checking symlinks with non-ASCII names needs readlink" "install it (busybox has it)"
        find "$TMP" -type l -exec sh -c 'for l; do printf "%s -> %s\n" "$l" "$(readlink "$l")"; done' \
            sh {} +
        ;;
    ?*) printf '%s\n' "$1" ;;
    esac
}

check_tree() { # what tar made in TMP: no device, fifo, socket, hard link, set-id bit or link out
    l=$(walk)
    w=
    case $l in "$TMP/"*) w=$l ;; *"$PORTENV_NL$TMP/"*) w=$TMP/${l#*"$PORTENV_NL$TMP/"} ;; esac
    if [ -n "$w" ]; then
        w=${w%%"$PORTENV_NL"*}
        m=${w#"$TMP/"}
        if [ -b "$w" ] || [ -c "$w" ]; then refuse "a device file: $m"
        elif [ -p "$w" ] || [ -S "$w" ]; then refuse "a fifo or socket: $m"
        elif [ -u "$w" ] || [ -g "$w" ] || [ -k "$w" ]; then refuse "a setuid, setgid or sticky mode: $m"
        elif [ ! -L "$w" ] && [ ! -d "$w" ] && [ -e "$w" ]; then refuse "a hard link: $m"
        else refuse "a member name with a newline or ' -> ': $m"
        fi
    fi
    w=$(links "$l" | T=$TMP awk '
        function out(p) { print p " -> " link[p]; bad = 1; exit }
        function inside(p,   stack, depth, q, i, c, cur, hops, t) {
            depth = split(p, stack, "/") - 1 # the folder holding the link
            q = link[p]
            hops = 0
            while (q != "") {
                if (q ~ /^\//) return 0
                i = index(q, "/")
                if (i) { c = substr(q, 1, i - 1); q = substr(q, i + 1) } else { c = q; q = "" }
                if (c == "" || c == ".") continue
                if (c == "..") { if (depth == 0) return 0; depth--; continue }
                stack[++depth] = c
                cur = stack[1]
                for (i = 2; i <= depth; i++) cur = cur "/" stack[i]
                if (cur in link) {
                    if (++hops > 40) return 0
                    t = link[cur]
                    depth--
                    q = (q == "") ? t : t "/" q
                }
            }
            return 1
        }
        {
            i = index($0, ENVIRON["T"] "/")
            j = index($0, " -> ")
            if (!i || j < i) { print "an unreadable symlink listing: " $0; bad = 1; exit }
            p = substr($0, i + length(ENVIRON["T"]) + 1, j - i - length(ENVIRON["T"]) - 1)
            if (p in link) { print "two symlinks listed as " p; bad = 1; exit }
            link[p] = substr($0, j + 4)
        }
        END { if (!bad) for (p in link) if (!inside(p)) out(p) }')
    [ -z "$w" ] || refuse "a symlink that leads outside the environment: $w"
}

install_env() { # extract, check, relocate, rename into place
    [ "$ADIR" = "$BASE" ] || MADE=1
    mkdir -p "$ADIR" || die 5 "cannot create $ADIR" "check permissions"
    [ -z "$CACHE" ] || cache_safe "$ADIR"
    LOCK=$ADIR/.portenv-lock.$NAME
    take_lock "$CACHE"
    [ -z "$CACHE" ] || [ ! -f "$DEST/.portenv/cache-ready" ] || return 0 # made meanwhile
    sweep
    check_existing
    TMP=$ADIR/.portenv-tmp.$NAME.$$
    mkdir "$TMP" || die 5 "cannot create $TMP" "check permissions"
    phase "extracting $((KIB / 1024)) MiB into $ADIR"
    install_unzstd "$LOCK"
    extract
    phase "checking $FILES files"
    check_names
    check_tree
    failed=
    k=0
    while [ $k -lt "$PIECES" ]; do
        k=$((k + 1))
        said "$LOCK/unzip.$k"
        [ -z "$SAID" ] || failed=${failed:+$failed, }$SAID
    done
    said "$LOCK/tar"
    [ -z "$SAID" ] || failed=${failed:+$failed, }$SAID
    if [ -n "$failed" ]; then
        cat "$LOCK/unzip.err" "$LOCK/tar.err" >&2 2>/dev/null
        die 8 "extracting into $TMP failed ($failed)" \
            "see the messages above: check the free space of $ADIR"
    fi
    { isnum "$LISTED" && [ "$LISTED" -ge "$FILES" ]; } ||
        die 8 "extracted ${LISTED:-0} of $FILES files into $TMP" \
            "see the messages above: check the free space of $ADIR"
    { [ -x "$TMP/$PY" ] && [ -s "$TMP/$PY" ]; } ||
        die 8 "the environment has no runnable $PY" "pack the environment again"
    phase "relocating to $DEST${COMPILE:+ and compiling the bytecode}"
    # shellcheck disable=SC2046 # the options of --compile: words without blanks
    out=$("$TMP/$PY" -I -S -B "$TMP/.portenv/relocate.py" --to "$DEST" --quiet $(compile_opts) 2>&1) || {
        rc=$?
        why=$(printf '%s\n' "$out" | sed -n 's/^error: //p' | sed -n 1p)
        fix=$(printf '%s\n' "$out" | sed -n 's/^  hint: //p' | sed -n 1p)
        case $why in
        'compiling the bytecode failed: '*) ;;
        '') [ -z "$out" ] || printf '%s\n' "$out" >&2
            why="relocating the environment to $DEST failed: exit $rc" ;;
        *) why="relocating the environment to $DEST failed: ${why#relocation failed: }" ;;
        esac
        die 8 "$why" "${fix:-see the messages above}; $DEST was left as it was"
    }
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
    [ -z "$CACHE" ] || printf 'file=%s\n' "$CACHE" >"$DEST/.portenv/cache-ready" ||
        die 8 "cannot write $DEST/.portenv/cache-ready" "check the free space of $ADIR"
}

# Updates (docs/format.md, "Updates"): an update.sh / update.tar holds the files that changed
# and the engine that applies them (.portenv-update/apply.py), run by the environment's python.

update_key() { # KEY: the value of KEY in the meta block (the first line for it counts)
    printf '%s\n' "$META" | sed -n "s/^$1=//p" | sed -n 1p
}

update_main() { # apply an update to DIR/NAME (the options of an unpack; --force and --list refused)
    U_FROM=$(update_key from_sha256) U_TO=$(update_key to_sha256)
    U_ADDS=$(update_key adds) U_CHANGES=$(update_key changes) U_REMOVES=$(update_key removes)
    for k in "$U_ADDS" "$U_CHANGES" "$U_REMOVES"; do isnum "$k" || die 3 "$F has a damaged meta block" "copy it again"; done
    if [ -n "$INFO" ]; then
        printf '%s\n' "$META" | sed '/^$/d'
        printf 'update from %s to %s: adds %s, changes %s, removes %s files\n' \
            "$U_FROM" "$U_TO" "$U_ADDS" "$U_CHANGES" "$U_REMOVES"
        exit 0
    fi
    [ -z "$LIST" ] || die 2 "$F is an update: it lists no packages" "use --info to see what it updates"
    [ -z "$FORCE" ] || die 2 "--force does not apply to an update" "an update changes the environment in place"
    PROGRESS=
    check_target
    FORCE=1
    check_dest
    { [ -d "$DEST/.portenv" ] && [ ! -L "$DEST" ]; } || die 5 "$DEST is not a portenv environment to update" \
        "give the -o DIR (and --env-name) of the environment this update is for"
    { [ -x "$DEST/$PY" ] && [ -s "$DEST/$PY" ]; } || die 5 "$DEST has no runnable $PY" \
        "it is not the environment this update is for"
    check_whole_file
    check_payload "$(payload_sha256)"
    check_unzstd
    if [ -n "$CHECK" ]; then
        unzstd_scratch
        update_check
        printf 'portenv: all checks passed, %s can update %s\n' "$F" "$DEST" >&2
        exit 0
    fi
    on_exit_clean
    update_env
    printf 'portenv: updated %s (%s added, %s changed, %s removed)\n' "$DEST" "$U_ADDS" "$U_CHANGES" "$U_REMOVES" >&2
    exit 0
}

update_member() { # NAME: one member of the update's payload, on stdout
    # shellcheck disable=SC2086 # UNZIP is a command and its option
    rd $((OFF + 5120)) "$PSIZE" | $UNZIP | tar -xOf - "$1"
}

update_check() { # --check: the engine compares DEST with the update's plan, writing nothing
    s=$(update_member .portenv-update/apply.py) || die 3 "$F holds no update engine" "copy it again"
    update_member .portenv-update/plan.json | "$DEST/$PY" -I -S -B -c "$s" "$DEST" - - --check || exit $?
}

update_env() { # extract the update beside DEST; the engine checks DEST, builds the new tree
    # beside it and switches it in (an interrupted run leaves TMP and OLD to sweep)
    LOCK=$ADIR/.portenv-lock.$NAME
    take_lock
    sweep
    TMP=$ADIR/.portenv-tmp.$NAME.$$
    mkdir "$TMP" || die 5 "cannot create $TMP" "check permissions"
    install_unzstd "$LOCK"
    # shellcheck disable=SC2086 # UNZIP is a command and its option
    rd $((OFF + 5120)) "$PSIZE" | $UNZIP | tar -xf - -C "$TMP" 2>"$LOCK/tar.err" ||
        die 8 "extracting the update into $TMP failed" "check the free space of $ADIR"
    check_tree
    OLD=$ADIR/.portenv-old.$NAME.$$
    # shellcheck disable=SC2046 # the options of --compile: words without blanks
    "$DEST/$PY" -I -S -B "$TMP/.portenv-update/apply.py" "$DEST" "$TMP" "$OLD" $(compile_opts) || exit $?
    rm -rf "$OLD" "$TMP"
    TMP='' OLD=''
}

need_commands() {
    missing=
    for t in tail head tr sed awk wc cat dd tar gzip sha256sum uname df mkdir mv rm find ls; do
        command -v "$t" >/dev/null 2>&1 || missing="$missing $t"
    done
    [ -z "$missing" ] || die 4 "this machine lacks the commands:$missing" \
        "install them (busybox provides all of them)"
    [ -z "$COMPRESSION" ] || [ "$COMPRESSION" != zstd ] || [ -n "$USHA" ] || command -v zstd >/dev/null 2>&1 ||
        die 4 "$F holds a zstd payload and this machine has no zstd command" \
            "install zstd, or unpack an archive packed with --compression gzip"
}

on_exit_clean() { # from here on, a failure or a signal leaves DEST and DIR as they were
    TMP='' OLD='' LOCKED='' MADE='' LOCK=''
    trap cleanup EXIT
    trap 'exit 129' HUP
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

first_run() { # (in a subshell) unpack into the cache unless its entry is complete; print the
    # cache key. Every check of an unpack runs; the entry's marker is written last.
    exec 3>&1 >&2
    COMPRESSION=
    need_commands
    open_archive
    need_commands
    [ "$FORMAT" != update1 ] || die 2 "$F is an update: it cannot --run" "apply it to the environment: sh $F -o DIR"
    PROGRESS=
    [ ! -t 2 ] || [ "$KIB" -lt 102400 ] || PROGRESS=1
    check_target
    cache_root
    DIR=$PORTENV_R NAME=$PSHA FORCE=1 CACHE=$F
    while :; do case $CACHE in ./*) CACHE=${CACHE#./} ;; *) break ;; esac; done
    case $CACHE in /*) ;; *) CACHE=$PWD/$CACHE ;; esac
    umask 077
    check_dest
    on_exit_clean
    install_env
    [ ! -t 2 ] || printf 'portenv: first run: unpacked %s files into %s\n' "$FILES" "$DEST" >&2
    printf '%s\n' "$PSHA" >&3
}

run_main() { # MODE ARGS... (as run_cached takes them): the first run unpacks, then exec
    [ "$1" = entry ] || [ $# -ge 3 ] || die 2 "--run needs a command" "sh env.sh --run CMD [ARGS...]"
    PORTENV_K=$(first_run) || exit $?
    run_cached "$PORTENV_K" "$@"
    die 8 "the cache entry $PORTENV_R/$PORTENV_K is not complete after the first run" \
        "run it again; if it persists, remove it (PORTENV=prune)"
}

cache_keys() { # the cache keys that ADIR holds an entry or a leftover for, one a line
    for e in "$ADIR"/* "$ADIR"/.portenv-tmp.* "$ADIR"/.portenv-old.* "$ADIR"/.portenv-lock.*; do
        k=${e##*/}
        k=${k#.portenv-???.}
        k=${k#.portenv-lock.}
        k=${k%%.*}
        case $k in *[!0-9a-f]*) ;; ????????????????????????????????????????????????????????????????) printf '%s\n' "$k" ;; esac
    done | sort -u
}

list_cache() { # one line an entry: KEY, KiB, ready or incomplete, the file that made it
    [ -d "$ADIR" ] || { printf 'portenv: no cache at %s\n' "$ADIR" >&2; return 0; }
    n=0
    for k in $(cache_keys); do
        n=$((n + 1))
        state=incomplete file=-
        if [ -f "$ADIR/$k/.portenv/cache-ready" ]; then
            state=ready
            file=$(sed -n 's/^file=//p' "$ADIR/$k/.portenv/cache-ready")
        fi
        kib=$(du -sk "$ADIR/$k" 2>/dev/null | awk '{ print $1 }')
        [ "$k" != "$PSHA" ] || file="$file (this file)"
        printf '%s %s %s %s\n' "$k" "${kib:-0}" "$state" "$file"
    done
    printf 'portenv: %s entries in %s\n' "$n" "$ADIR" >&2
}

prune_one() { # KEY [keep]: under the entry's lock (exit 5 while a first run makes it), remove
    # the leftovers of dead runs and, unless kept, the entry: its marker first, so that no run
    # trusts it meanwhile
    NAME=$1 DEST=$ADIR/$1
    on_exit_clean
    LOCK=$ADIR/.portenv-lock.$1
    take_lock
    sweep
    [ -z "$2" ] || return 0
    rm -f "$DEST/.portenv/cache-ready"
    if [ -e "$DEST" ] || [ -L "$DEST" ]; then
        mv "$DEST" "$ADIR/.portenv-old.$1.$$" && rm -rf "$ADIR/.portenv-old.$1.$$"
    fi
}

prune() { # remove every entry but this file's (all with --all)
    [ -d "$ADIR" ] || return 0
    cache_safe "$ADIR"
    failed=0 n=0
    for k in $(cache_keys); do
        if [ -z "$ALL" ] && [ "$k" = "$PSHA" ]; then
            (prune_one "$k" keep) || failed=1
        elif (prune_one "$k"); then
            n=$((n + 1))
        else
            failed=1
        fi
    done
    printf 'portenv: removed %s entries from %s\n' "$n" "$ADIR" >&2
    [ "$failed" = 0 ] || exit 5
}

main() {
    case ${PORTENV-} in
    '') case $PORTENV_ENTRY in *[!\ ]*) run_main entry "$@" ;; esac ;;
    unpack) ;;
    info | list | check | list-cache | prune) set -- "--$PORTENV" "$@" ;;
    help) usage; exit 0 ;;
    *) die 2 "unknown PORTENV=$PORTENV" \
        "use unpack, info, list, check, list-cache, prune or help, or unset it to run the file" ;;
    esac
    [ "${1-}" != --run ] || run_main run "$@"
    if [ "${2-}" = --run ] && [ "$PORTENV_EMBEDDED_OFFSET" = 0000000000 ]; then # ARCHIVE --run
        ARCHIVE=$1
        shift
        run_main run "$@"
    fi
    parse_args "$@"
    COMPRESSION=
    need_commands
    if [ -n "$LIST_CACHE$PRUNE" ]; then
        PSHA=
        if [ -n "$ARCHIVE" ] || [ "$PORTENV_EMBEDDED_OFFSET" != 0000000000 ]; then open_archive; fi
        cache_root
        ADIR=$PORTENV_R
        if [ -n "$LIST_CACHE" ]; then list_cache; else prune; fi
        exit 0
    fi
    open_archive
    need_commands
    [ "$FORMAT" != update1 ] || update_main
    if [ -n "$INFO" ]; then
        printf '%s\n' "$META" | sed '/^$/d'
        set -f
        # shellcheck disable=SC2086 # the entry's words
        set -- $PORTENV_ENTRY
        [ $# = 0 ] || printf 'entry=%s\n' "$*"
        exit 0
    fi
    if [ -n "$LIST" ]; then
        check_whole_file
        check_payload "$(payload_sha256)"
        unzstd_scratch
        # shellcheck disable=SC2086 # UNZIP is a command and its option
        rd $((OFF + 5120)) "$PSIZE" | $UNZIP | tar -xOf - .portenv/packages.txt ||
            die 3 "$F lists no packages" "it was made by an older portenv: use --info"
        exit 0
    fi
    PROGRESS=
    [ ! -t 2 ] || [ "$KIB" -lt 102400 ] || PROGRESS=1
    check_target
    check_dest
    [ -z "$WANT_SHA" ] || phase "checking the sha256 of $F"
    check_whole_file
    if [ -n "$CHECK" ]; then
        check_payload "$(payload_sha256)"
        check_unzstd
        printf 'portenv: all checks passed, %s can be unpacked into %s\n' "$F" "$DEST" >&2
        exit 0
    fi
    on_exit_clean
    install_env
    printf 'portenv: unpacked %s files into %s\n' "$FILES" "$DEST" >&2
    exit 0
}

main "$@"
# shellcheck disable=SC2317 # main exits: this line keeps the shell out of the archive after it
exit
