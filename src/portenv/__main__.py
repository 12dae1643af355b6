"""Run the command line interface as ``python -m portenv``."""

from portenv.cli import run

run()
