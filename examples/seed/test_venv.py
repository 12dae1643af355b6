"""Check the unpacked environment: imports, versions, where Python runs from, and TLS trust."""

import os
import ssl
import sys

import httpx
import requests

print(f"python {sys.version.split()[0]} at {sys.prefix}")
print(f"requests {requests.__version__}, httpx {httpx.__version__}")

expected = os.environ.get("EXPECTED_PREFIX")
if expected and os.path.realpath(sys.prefix) != os.path.realpath(expected):
    sys.exit(f"FAIL: sys.prefix is {sys.prefix}, expected {expected}")

certificates = ssl.create_default_context().cert_store_stats()["x509"]
print(f"TLS: {certificates} CA certificates trusted by default")
if certificates == 0:
    sys.exit("FAIL: no CA certificates: HTTPS verification would fail")

requests.Session().get_adapter("https://example.invalid").init_poolmanager(1, 1)
context = httpx.create_ssl_context()
if context.cert_store_stats()["x509"] == 0:
    sys.exit("FAIL: httpx found no CA certificates")
print("OK")
