"""Run INSIDE a target by the env's python: fail if a non-glibc library came from outside the env.

Usage: ENV/bin/python outside_libs.py ENV. It imports the extension modules that pull in the
bundled libraries, then reads /proc/self/maps (glibc resolves $ORIGIN through /proc too).
Prints `outside libs: none` and exits 0, or lists the offenders and exits 1.
"""

import ctypes  # noqa: F401 - loaded for their shared libraries
import os
import sqlite3  # noqa: F401
import ssl  # noqa: F401
import sys

GLIBC = (
    *("libc.so", "libm.so", "ld-linux", "libpthread", "libdl.so", "librt.so", "libutil.so"),
    *("libresolv.so", "libanl.so", "libmvec.so", "libnss_"),  # glibc's own too (libpq: resolv)
)


def outside(prefix: str) -> list[str]:
    """Mapped shared libraries that are neither glibc's nor under `prefix`."""
    found = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.rstrip("\n").split(None, 5)
            path = fields[5] if len(fields) == 6 else ""
            inside = os.path.realpath(path).startswith(prefix + "/")
            if ".so" in path and not inside and not os.path.basename(path).startswith(GLIBC):
                found.add(path)
    return sorted(found)


if __name__ == "__main__":
    offenders = outside(os.path.realpath(sys.argv[1]))
    print("outside libs:", offenders or "none")
    sys.exit(1 if offenders else 0)
