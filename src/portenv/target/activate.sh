# portenv activation: source it from a POSIX shell: . ENV/bin/activate
# The path below is rewritten whenever the environment is relocated.
PORTENV_PREFIX="@PREFIX@"
if [ -n "${_PORTENV_OLD_PATH+x}" ]; then PATH="$_PORTENV_OLD_PATH"; fi
_PORTENV_OLD_PATH="$PATH"
PATH="$PORTENV_PREFIX/bin:$PATH"
CONDA_PREFIX="$PORTENV_PREFIX"
export PATH CONDA_PREFIX PORTENV_PREFIX
deactivate() {
    PATH="$_PORTENV_OLD_PATH"
    export PATH
    unset _PORTENV_OLD_PATH PORTENV_PREFIX CONDA_PREFIX
    unset -f deactivate
}
if [ -d "$PORTENV_PREFIX/etc/conda/activate.d" ]; then
    for _portenv_script in "$PORTENV_PREFIX"/etc/conda/activate.d/*.sh; do
        if [ -f "$_portenv_script" ]; then . "$_portenv_script"; fi
    done
    unset _portenv_script
fi
hash -r 2>/dev/null || true
