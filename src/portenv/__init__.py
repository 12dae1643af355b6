"""portenv: turn a Python environment into one file that runs on a bare Linux machine."""

__version__ = "0.1.0"

__all__ = ["__version__"]
