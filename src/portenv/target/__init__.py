"""Code that runs on the target: the POSIX sh unpacker and the stdlib-only relocation engine.

Nothing here imports portenv; the pack side ships these files as data.
"""
