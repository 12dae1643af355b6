"""The example application: proves it runs from the unpacked environment."""

import os
import sqlite3
import ssl
import subprocess
import sys

print(f"python {sys.version.split()[0]} running from {sys.prefix}")
print(f"ssl: {ssl.OPENSSL_VERSION}; sqlite: {sqlite3.sqlite_version}")
greet = os.path.join(sys.prefix, "bin", "greet")
print(
    "greet says:",
    subprocess.run([greet], capture_output=True, text=True, check=True).stdout.strip(),
)
