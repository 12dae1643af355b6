"""Point OpenSSL at the environment's CA bundle when the machine has none (bare targets).

Imported at interpreter start by `portenv-certs.pth` in site-packages, so `ssl`'s default
context, urllib, pip, requests and httpx verify HTTPS both when the env's python is run directly
and after activation. A machine that has its own bundle, or a user who set SSL_CERT_FILE or
SSL_CERT_DIR, is left alone. Costs a few stat calls; `ssl` is not imported.
"""

from __future__ import annotations

import os
import sys

SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/ssl/cert.pem",
    "/usr/lib/ssl/cert.pem",
    "/usr/local/ssl/cert.pem",
)


HERE = os.path.dirname(os.path.abspath(__file__))
"""The site-packages folder the hook was installed into, wherever the interpreter keeps it
(Debian's python: local/lib/pythonX.Y/dist-packages)."""


def env_bundles(prefix: str, site: str = HERE) -> list[str]:
    """Where an environment keeps a CA bundle: conda's ca-certificates, then certifi (in
    lib/pythonX.Y/site-packages, or beside this hook)."""
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    return [
        os.path.join(prefix, "ssl", "cacert.pem"),
        os.path.join(prefix, "ssl", "cert.pem"),
        os.path.join(prefix, "lib", version, "site-packages", "certifi", "cacert.pem"),
        os.path.join(site, "certifi", "cacert.pem"),
    ]


def configure(
    environ: dict[str, str] | os._Environ[str] = os.environ,
    prefix: str = sys.prefix,
    system_bundles: tuple[str, ...] = SYSTEM_BUNDLES,
    site: str = HERE,
) -> str | None:
    """Set SSL_CERT_FILE to the env's bundle if nothing else provides one; return what was set."""
    if environ.get("SSL_CERT_FILE") or environ.get("SSL_CERT_DIR"):
        return None
    if any(os.path.exists(path) for path in system_bundles):
        return None
    for bundle in env_bundles(prefix, site):
        if os.path.isfile(bundle):
            environ["SSL_CERT_FILE"] = bundle
            return bundle
    return None


configure()
