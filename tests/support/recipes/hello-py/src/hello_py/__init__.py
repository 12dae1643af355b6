"""A tiny noarch: python package for portenv's test channel."""

import sys


def main() -> None:
    """Print the prefix the interpreter believes it runs from."""
    print(f"hello-py {sys.prefix}")
