"""The start-up hook that gives bare targets a CA bundle, and when seal installs it."""

from __future__ import annotations

import sys
from pathlib import Path

from portenv.model import StagedPrefix, Subdir
from portenv.seal.certs import PTH_NAME, add_certificate_hook
from portenv.target import portenv_certs

VERSION = f"python{sys.version_info[0]}.{sys.version_info[1]}"


def staged(root: Path) -> StagedPrefix:
    return StagedPrefix(root, "/p", Subdir("linux-64"), f"bin/{VERSION}")


def certifi_bundle(root: Path) -> Path:
    bundle = root / "lib" / VERSION / "site-packages" / "certifi" / "cacert.pem"
    bundle.parent.mkdir(parents=True)
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    return bundle


def test_bundle_is_used_only_on_a_machine_without_one(tmp_path: Path) -> None:
    bundle = certifi_bundle(tmp_path)
    environ: dict[str, str] = {}
    assert portenv_certs.configure(environ, str(tmp_path), ("/nonexistent/a",)) == str(bundle)
    assert environ == {"SSL_CERT_FILE": str(bundle)}
    system = tmp_path / "system.pem"
    system.write_text("x")
    environ = {}
    assert portenv_certs.configure(environ, str(tmp_path), (str(system),)) is None
    assert environ == {}


def test_user_settings_win(tmp_path: Path) -> None:
    certifi_bundle(tmp_path)
    for key in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        environ = {key: "/mine"}
        assert portenv_certs.configure(environ, str(tmp_path), ()) is None
        assert environ == {key: "/mine"}


def test_conda_bundle_comes_before_certifi(tmp_path: Path) -> None:
    certifi_bundle(tmp_path)
    conda = tmp_path / "ssl" / "cacert.pem"
    conda.parent.mkdir()
    conda.write_text("x")
    assert portenv_certs.configure({}, str(tmp_path), ()) == str(conda)


def test_certifi_beside_the_hook_in_another_site_folder(tmp_path: Path) -> None:
    """Debian's python keeps packages in local/lib/pythonX.Y/dist-packages: the hook is
    installed there, beside certifi, and finds it from where it is."""
    site = tmp_path / "local" / "lib" / VERSION / "dist-packages"
    bundle = site / "certifi" / "cacert.pem"
    bundle.parent.mkdir(parents=True)
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    environ: dict[str, str] = {}
    assert portenv_certs.configure(environ, str(tmp_path), (), str(site)) == str(bundle)
    assert environ == {"SSL_CERT_FILE": str(bundle)}
    assert portenv_certs.configure({}, str(tmp_path), ()) is None, "not in this module's folder"


def test_seal_adds_the_hook_only_with_a_bundle(tmp_path: Path) -> None:
    site = tmp_path / "lib" / VERSION / "site-packages"
    site.mkdir(parents=True)
    assert add_certificate_hook(staged(tmp_path)) is False
    assert not (site / PTH_NAME).exists()
    certifi_bundle_path = site / "certifi" / "cacert.pem"
    certifi_bundle_path.parent.mkdir()
    certifi_bundle_path.write_text("x")
    assert add_certificate_hook(staged(tmp_path)) is True
    assert (site / PTH_NAME).read_text() == "import portenv_certs\n"
    assert (site / "portenv_certs.py").read_text().startswith('"""Point OpenSSL')
