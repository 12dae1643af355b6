"""The command line: options become one request, the library does the work, errors end here.

Each command group has its module (pack.py: plan, pack, convert; unpack.py; delta.py;
author.py; inspect.py); this one holds the app and the single error boundary, `main`.
"""

from __future__ import annotations

import os
import sys
import tarfile
import traceback
from collections.abc import Sequence
from typing import NoReturn

import click

from portenv import __version__
from portenv.cli.author import COMMANDS as AUTHOR_COMMANDS
from portenv.cli.delta import delta_cmd
from portenv.cli.inspect import inspect_cmd
from portenv.cli.pack import convert_cmd, pack_cmd, plan_cmd
from portenv.cli.unpack import unpack_cmd, unpacker_cmd
from portenv.errors import PortenvError

__all__ = ["app", "main", "run"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.version_option(__version__, prog_name="portenv")
def app(debug: bool) -> None:
    """Turn a Python environment into one file that runs on a bare Linux machine."""


for _command in (
    plan_cmd,
    pack_cmd,
    delta_cmd,
    unpacker_cmd,
    unpack_cmd,
    convert_cmd,
    *AUTHOR_COMMANDS,
    inspect_cmd,
):
    app.add_command(_command)


def _report(error: PortenvError) -> None:
    sys.stderr.write(f"error: {error.message}\n")
    if error.hint:
        sys.stderr.write(f"  hint: {error.hint}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the single place where errors become exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if not hasattr(tarfile, "data_filter"):  # PEP 706: 3.10.12, 3.11.4, 3.12
        version = ".".join(map(str, sys.version_info[:3]))
        msg = f"Python {version} has no tarfile extraction filters, which portenv needs"
        _report(PortenvError(msg, hint="run portenv with Python 3.10.12+, 3.11.4+ or 3.12+"))
        return 1
    try:
        returned = app.main(args=args, prog_name="portenv", standalone_mode=False)
    except PortenvError as error:
        if debug:
            traceback.print_exc()
        _report(error)
        return error.exit_code
    except click.exceptions.Exit as done:
        return int(done.exit_code)
    except click.exceptions.Abort:
        sys.stderr.write("interrupted\n")
        return 130
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except click.ClickException as usage:
        usage.show()
        return usage.exit_code
    return returned if isinstance(returned, int) else 0


def run() -> NoReturn:
    """Console-script entry point.

    Leaves with os._exit: py-rattler's async runtime can crash during interpreter
    finalization after its work is done (see FIELD-NOTES), which must not turn a success into
    a random failure.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
