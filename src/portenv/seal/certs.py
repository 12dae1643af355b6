"""Give bare targets working HTTPS: ship the hook that points OpenSSL at the env's CA bundle."""

from __future__ import annotations

from portenv.model import StagedPrefix
from portenv.seal.files import target_file, write_text
from portenv.stage.wheels import site_packages

__all__ = ["PTH_NAME", "add_certificate_hook", "has_ca_bundle"]

PTH_NAME = "portenv-certs.pth"


def has_ca_bundle(staged: StagedPrefix) -> bool:
    """Whether the env carries a CA bundle (conda ca-certificates, or certifi)."""
    candidates = [
        staged.path / "ssl" / "cacert.pem",
        staged.path / "ssl" / "cert.pem",
        site_packages(staged) / "certifi" / "cacert.pem",
    ]
    return any(c.is_file() for c in candidates)


def add_certificate_hook(staged: StagedPrefix) -> bool:
    """Install the start-up hook when there is a bundle to point at; say whether it was."""
    if not has_ca_bundle(staged):
        return False
    site = site_packages(staged)
    write_text(site / "portenv_certs.py", target_file("portenv_certs.py"), 0o644)
    write_text(site / PTH_NAME, "import portenv_certs\n", 0o644)
    return True
