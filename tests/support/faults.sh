# shellcheck shell=sh
# Fault injection inside a bare rootfs, for tests/e2e/test_faults.py (POSIX sh: busybox ash,
# dash). A driver sources this file; the harness (tests/support/faults.py) parses its output
# lines, which start with a keyword.
#
# The driver runs as pid 1 of its own pid namespace, so `kill -9 -1` delivers SIGKILL to every
# other process in the sandbox at once: the unpacker's sh and its tail, head, gzip, tar, mv and
# the env's python, as a SIGKILL to the whole process group would, and nothing survives to run
# a trap. Scratch files go to $H, a tmpfs, so the harness writes nothing into the rootfs.

LC_ALL=C
export LC_ALL
H=/h
SHIM=/faults/shim
OUT=/srv/app
NAME='env'
DEST=$OUT/$NAME
MARK=portenv-fault-marker

now_cs() { # centiseconds since boot
    read -r up _ </proc/uptime
    up=${up%.*}${up#*.}
    while :; do case $up in 0?*) up=${up#0} ;; *) break ;; esac; done
    echo "$up"
}

nap() { # CS: sleep CS centiseconds
    sleep "$(($1 / 100)).$(($1 % 100 / 10))$(($1 % 10))"
}

procs() { # sets SEEN: names of the live processes other than this driver
    SEEN=
    for p in /proc/[0-9]*; do
        [ "${p#/proc/}" != "$$" ] || continue
        { read -r _ c st _ <"$p/stat"; } 2>/dev/null || continue
        [ "$st" = Z ] || { c=${c#(} && SEEN="$SEEN${c%)},"; }
    done
    SEEN=${SEEN%,}
}

finished() { # PID: the child PID has exited (a zombie until `wait` reaps it)
    { read -r _ _ st _ <"/proc/$1/stat"; } 2>/dev/null || return 0
    [ "$st" = Z ]
}

listing() { # DIR: path, type, mode, size, link target and md5 of every entry, sorted
    (
        cd "$1" || exit 1
        find . -exec stat -c '%n|%F|%a' {} +
        find . -type f -exec stat -c '%n|size|%s' {} +
        find . -type f -exec md5sum {} + | sed 's/^\([0-9a-f]*\)  \(.*\)$/\2|md5|\1/'
        find . -type l -exec stat -c '%n|link|%N' {} +
    ) | sort
}

ids() { # DIR: inode and mtime of every entry: they change when a file is rewritten or replaced
    (cd "$1" && find . -exec stat -c '%n|id|%i|%Y' {} +) | sort
}

digest() { # COMMAND...: sha256 of what the command prints
    "$@" | sha256sum | cut -c1-64
}

runs() { # DIR: the env's own python and its relocated C program work
    "$1/bin/python" -B -c 'import json, sqlite3, ssl, sys; print("python ok", sys.prefix)' &&
        "$1/bin/greet"
}

reference() { # UNPACK...: first unpack, timed; sets DUR and REF, prints the full listing
    t0=$(now_cs)
    "$@" -o "$OUT" 2>"$H/err" || { echo "reference-failed $(cat "$H/err")"; exit 1; }
    DUR=$(($(now_cs) - t0))
    echo "duration $DUR"
    listing "$DEST" >"$H/reference"
    REF=$(sha256sum <"$H/reference" | cut -c1-64)
    sed 's/^/reference /' "$H/reference"
    sed -n 's/^ *"prefix": "\(.*\)",$/manifest-prefix \1/p' "$DEST/.portenv/manifest.json"
    runs "$DEST" | sed 's/^/runs /'
}

mark() { # N: write marker N into the env at DEST and remember its identity as PREV
    echo "$1" >"$DEST/$MARK"
    listing "$DEST" >"$H/listing"
    PREV=$(ids "$DEST" | cat "$H/listing" - | sha256sum | cut -c1-64)
}

state_of() { # DIR: new (the reference env), previous (PREV: untouched) or broken
    listing "$1" >"$H/listing"
    if [ "$(sha256sum <"$H/listing" | cut -c1-64)" = "$REF" ]; then
        echo new
    elif [ -n "$PREV" ] && [ "$(ids "$1" | cat "$H/listing" - | sha256sum | cut -c1-64)" = "$PREV" ]; then
        echo previous
    else
        echo broken
    fi
}

entries() { # DIR: its entries, comma separated ("-" for none)
    e=
    for f in "$1"/* "$1"/.[!.]* "$1"/..?*; do
        [ -e "$f" ] || [ -L "$f" ] && e="$e${f##*/},"
    done
    e=${e%,}
    echo "${e:--}"
}

probe() { # what a killed unpack left: DEST's state, each folder set aside, every leftover
    dest=absent
    [ ! -e "$DEST" ] || dest=$(state_of "$DEST")
    aside=
    for o in "$OUT"/.portenv-old.*; do
        [ -e "$o" ] && aside="$aside$(state_of "$o"),"
    done
    aside=${aside%,}
    echo "dest=$dest aside=${aside:--} left=$(entries "$OUT")"
}

run_killed() { # POINT UNPACK...: start the unpack, SIGKILL it at POINT; sets RC, SEEN
    point=$1
    shift
    SEEN=
    case $point in
    t:*) # after this many per mille of the measured duration
        "$@" >/dev/null 2>"$H/killed.err" &
        pid=$!
        nap $((DUR * ${point#t:} / 1000))
        procs
        kill -9 -1 2>/dev/null ;;
    p:*) # p:NAME or p:NAME:CS: once a process of this name runs (and CS centiseconds more)
        "$@" >/dev/null 2>"$H/killed.err" &
        pid=$!
        want=${point#p:}
        while procs; do
            case ",$SEEN," in *",${want%%:*},"*) break ;; esac
            ! finished "$pid" || break
        done
        case $want in *:*) nap "${want#*:}" && procs ;; esac
        kill -9 -1 2>/dev/null ;;
    h:*) # at a matching mv, mkdir, find, rm or tar call of the unpacker (fault-shim.sh)
        FAULT_AT=${point#h:} PATH="$SHIM:$PATH" "$@" >/dev/null 2>"$H/killed.err" &
        pid=$! ;;
    esac
    wait "$pid"
    RC=$?
}

missed() { # POINT: a p:NAME point whose process ran and ended between two polls (the unpack
    # finished before the kill), so the point was not tried; short-lived processes such as the
    # relocation's python can slip through when the unpack keeps both cores busy
    case $1 in p:*) ;; *) return 1 ;; esac
    want=${1#p:}
    case ",$SEEN," in *",${want%%:*},"*) return 1 ;; esac
    [ "$RC" = 0 ]
}

next_run() { # LABEL UNPACK...: run an unpack to completion; prints LABEL=CODE and its error line
    label=$1
    shift
    "$@" 2>"$H/next.err"
    code=$?
    printf '%s=%s %s_error=%s' "$label" "$code" "$label" "$(grep -m1 '^error: ' "$H/next.err" | tr ' ' _)"
    ! grep -q '^portenv: restored ' "$H/next.err" || printf ' %s_restored=%s' "$label" "$(state_of "$DEST")"
}

campaign() { # KIND POINTS UNPACK...: KIND first (nothing at DEST) or replace (--force over an env)
    kind=$1
    points=$2
    shift 2
    reference "$@"
    if [ "$kind" = first ]; then
        rm -rf "$OUT"
    else
        mark 0
        t0=$(now_cs)
        "$@" -o "$OUT" --force 2>"$H/err" || { echo "timing-failed $(cat "$H/err")"; exit 1; }
        DUR=$(($(now_cs) - t0))
        echo "duration $DUR"
    fi
    i=0
    while read -r point; do
        i=$((i + 1))
        PREV=
        tries=0
        while :; do
            tries=$((tries + 1))
            if [ "$kind" = first ]; then
                run_killed "$point" "$@" -o "$OUT"
            else
                mark "$i"
                run_killed "$point" "$@" -o "$OUT" --force
            fi
            if ! missed "$point" || [ "$tries" -ge 5 ]; then break; fi
            [ "$kind" = replace ] || rm -rf "$OUT" # it ran to the end: start again from nothing
        done
        printf 'point %s %s dur=%s rc=%s tries=%s procs=%s %s' "$i" "$point" "$DUR" "$RC" \
            "$tries" "${SEEN:--}" "$(probe)"
        if [ "$kind" = first ] && [ ! -e "$DEST" ]; then
            t0=$(now_cs)
            printf ' %s' "$(next_run plain "$@" -o "$OUT")"
        else
            printf ' %s' "$(next_run plain "$@" -o "$OUT")"
            t0=$(now_cs)
            printf ' %s' "$(next_run force "$@" -o "$OUT" --force)"
        fi
        DUR=$(($(now_cs) - t0)) # the next point's scale: a full run, under today's load
        echo " after=$(state_of "$DEST") after_left=$(entries "$OUT")"
        [ "$kind" = replace ] || rm -rf "$OUT"
    done <"$points"
    [ -e "$DEST" ] || "$@" -o "$OUT" 2>/dev/null
    runs "$DEST" | sed 's/^/final /'
}

full_disk() { # AT UNPACK...: another process fills /small at the shim point AT (first, --force)
    at=$1
    shift
    OUT=/small/app DEST=/small/app/env
    reference "$@"
    rm -rf "$OUT"
    filled "$at" first "$@"
    mark 1
    filled "$at" replace "$@" --force
}

filled() { # AT CASE UNPACK...: one unpack with the disk filled at AT, then a run with space
    at=$1 name=$2
    shift 2
    FAULT_AT=$at FAULT_DO='dd if=/dev/zero of=/small/filler bs=64k 2>/dev/null; :' \
        PATH="$SHIM:$PATH" "$@" -o "$OUT" 2>"$H/err"
    rc=$?
    rm -f /small/filler
    state=absent
    [ ! -e "$DEST" ] || state=$(state_of "$DEST")
    printf 'case %s rc=%s error=%s traceback=%s state=%s left=%s %s' "$name" "$rc" \
        "$(grep '^error: ' "$H/err" | tail -n 1 | tr ' ' _)" "$(grep -c Traceback "$H/err")" \
        "$state" "$(entries "$OUT")" "$(next_run next "$@" -o "$OUT")"
    echo " after=$(state_of "$DEST") after_left=$(entries "$OUT")"
}

read_only_setup() { # UNPACK...: an env at DEST bound read-only at $H/bound, one in /ro2 (ro)
    reference "$@" >/dev/null
    mark 1
    mkdir "$H/bound" && mount --bind "$OUT" "$H/bound" && mount -o remount,bind,ro "$H/bound"
    "$@" -o /ro2/app 2>/dev/null && echo 2 >/ro2/app/env/$MARK
    mount -o remount,ro /ro && mount -o remount,ro /ro2
}

attempt() { # CASE UNPACK...: an unpack; prints its exit code and first error line
    name=$1
    shift
    "$@" 2>"$H/err"
    printf 'case %s rc=%s error=%s\n' "$name" $? "$(grep -m1 '^error: ' "$H/err" | tr ' ' _)"
}

read_only_after() { # UNPACK...: the envs are intact; /ro2 takes an unpack once writable again
    echo "state bound=$(state_of "$DEST") ro=$(entries /ro) ro2=$(entries /ro2/app)"
    grep -qx 2 /ro2/app/env/$MARK && mount -o remount,rw /ro2 &&
        "$@" -o /ro2/app --force 2>/dev/null &&
        echo "writable-again $(entries /ro2/app) $(runs /ro2/app/env | head -n 1)"
}

race() { # ROUND [--force]: env.sh and portenv-unpack start together into the same DEST
    round=$1
    shift
    sh /dist/env.sh -o "$OUT" "$@" 2>"$H/a.err" &
    a=$!
    sh /dist/portenv-unpack /dist/env.tar -o "$OUT" "$@" 2>"$H/b.err" &
    b=$!
    wait "$a"
    ra=$?
    wait "$b"
    rb=$?
    printf 'round %s a=%s b=%s a_lines=%s b_lines=%s a_error=%s b_error=%s state=%s left=%s\n' \
        "$round" "$ra" "$rb" "$(grep -c . "$H/a.err")" "$(grep -c . "$H/b.err")" \
        "$(grep -m1 '^error: ' "$H/a.err" | tr ' ' _)" "$(grep -m1 '^error: ' "$H/b.err" | tr ' ' _)" \
        "$(state_of "$DEST")" "$(entries "$OUT")"
}

in_use() { # UNPACK...: --force replaces an env whose python runs, cwd inside it, a file open
    reference "$@" >/dev/null
    (
        cd "$DEST/lib/python3.12" && exec "$DEST/bin/python3.12" -B -c '
import os, sys, time
held = open("os.py", "rb")
open("/h/ready", "w").close()
while not os.path.exists("/h/go"):
    time.sleep(0.02)
size = len(held.read())
maps = [line for line in open("/proc/self/maps") if "libpython" in line]
gone = all(line.rstrip().endswith("(deleted)") for line in maps)
import json  # imported only now: from the new env, at the same path
print("old-python", "read", size, "libpython-deleted" if gone else "libpython-kept", json.dumps(1))
' >"$H/old.out" 2>&1
    ) &
    old=$!
    while [ ! -e "$H/ready" ]; do sleep 0.05; done
    "$@" -o "$OUT" --force 2>"$H/err"
    printf 'force=%s error=%s ' $? "$(grep -m1 '^error: ' "$H/err" | tr ' ' _)"
    kill -0 "$old" && ! finished "$old" && printf 'old-running '
    echo "state=$(state_of "$DEST") left=$(entries "$OUT")"
    touch "$H/go"
    wait "$old"
    echo "old-exit=$?"
    cat "$H/old.out"
}

elsewhere() { # UNPACK...: destinations across file systems; /tmp is full and never used
    dd if=/dev/zero of=/tmp/filler bs=4k 2>/dev/null
    mkdir /srv/real && ln -s /srv/real "$H/link"
    attempt via-symlink env TMPDIR=/tmp "$@" -o "$H/link/app"
    echo "via-symlink $(entries /srv/real/app) $(runs /srv/real/app/env | tr '\n' ' ')"
    attempt fs-root "$@" -o /other
    attempt fs-root-force "$@" -o /other --force
    echo "fs-root $(entries /other) $(runs /other/env | tr '\n' ' ')"
    mkdir -p /srv/mp/env && mount -t tmpfs -o size=1m tmpfs /srv/mp/env
    attempt mount-point "$@" -o /srv/mp --force
    echo "mount-point $(entries /srv/mp) $(entries /srv/mp/env)"
    OUT=/other DEST=/other/env
    mark 1
    mkdir /srv/sl && ln -s /other/env /srv/sl/env
    attempt symlink-dest "$@" -o /srv/sl --force
    echo "symlink-dest $(entries /srv/sl) $(state_of /other/env) $(entries /other)"
    rm -f /tmp/filler
}
