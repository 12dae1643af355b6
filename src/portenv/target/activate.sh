# portenv activation: source it from a POSIX shell: . ENV/bin/activate
# The path below is rewritten whenever the environment is relocated.
PORTENV_PREFIX="@PREFIX@"
if [ -n "${_PORTENV_OLD_PATH+x}" ]; then PATH="$_PORTENV_OLD_PATH"; fi
_PORTENV_OLD_PATH="$PATH"
PATH="$PORTENV_PREFIX/bin:$PATH"
CONDA_PREFIX="$PORTENV_PREFIX"
export PATH CONDA_PREFIX PORTENV_PREFIX
# Bare machines have no CA certificates: use the env's bundle unless the machine has one.
if [ -z "${SSL_CERT_FILE:-}" ] && [ -z "${SSL_CERT_DIR:-}" ]; then
    _portenv_system=
    for _portenv_f in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt \
        /etc/ssl/ca-bundle.pem /etc/pki/tls/cacert.pem /etc/ssl/cert.pem /usr/lib/ssl/cert.pem \
        /usr/local/ssl/cert.pem; do
        if [ -e "$_portenv_f" ]; then _portenv_system=1; fi
    done
    if [ -z "$_portenv_system" ]; then
        for _portenv_f in "$PORTENV_PREFIX/ssl/cacert.pem" "$PORTENV_PREFIX/ssl/cert.pem" \
            "$PORTENV_PREFIX"/lib/python*/site-packages/certifi/cacert.pem; do
            if [ -f "$_portenv_f" ]; then
                SSL_CERT_FILE="$_portenv_f"
                _PORTENV_SET_SSL=1
                export SSL_CERT_FILE
                break
            fi
        done
    fi
    unset _portenv_system _portenv_f
fi
deactivate() {
    PATH="$_PORTENV_OLD_PATH"
    export PATH
    if [ -n "${_PORTENV_SET_SSL:-}" ]; then unset SSL_CERT_FILE _PORTENV_SET_SSL; fi
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
