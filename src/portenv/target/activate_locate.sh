# Where this environment is, found from this file's own location (a plain archive is
# extracted by tools that rewrite nothing): bash and zsh name the file being sourced; dash,
# busybox sh and mksh keep it open while they read it, so it is among this shell's open files.
_portenv_here=
if [ -n "${BASH_VERSION:-}" ]; then
    # shellcheck disable=SC2128,SC3028 # bash's own variable: its first element is this file
    _portenv_here=$BASH_SOURCE
elif [ -n "${ZSH_VERSION:-}" ]; then
    eval '_portenv_here=${(%):-%x}'
else
    _portenv_pid=
    read -r _portenv_pid _portenv_rest 2>/dev/null </proc/self/stat
    _portenv_best=-1
    for _portenv_f in /proc/"${_portenv_pid:-none}"/fd/*; do
        _portenv_l=$(readlink "$_portenv_f" 2>/dev/null) || continue
        case $_portenv_l in
        */bin/activate)
            if [ "${_portenv_f##*/}" -gt "$_portenv_best" ]; then
                _portenv_best=${_portenv_f##*/}
                _portenv_here=$_portenv_l
            fi ;;
        esac
    done
    unset _portenv_pid _portenv_rest _portenv_best _portenv_f _portenv_l
fi
if [ -z "$_portenv_here" ] || [ ! -f "$_portenv_here" ]; then
    echo "error: cannot tell where this activate script is" >&2
    echo "  hint: source it from bash, zsh, dash or busybox sh on Linux (with /proc mounted)" >&2
    unset _portenv_here
    return 1 2>/dev/null || exit 1
fi
PORTENV_PREFIX=$(cd -P -- "$(dirname -- "$_portenv_here")/.." && pwd -P)
unset _portenv_here
