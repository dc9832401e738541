"""How every command answers a mistake: one line on stderr naming the file / flag / key / value,
exit status 2 for usage errors and 1 for failures, no traceback unless asked for.

    @command
    def main(argv):                      # argv: the arguments, without the program name
        args = CommandParser(...).parse_args(argv)
        ...

`--debug` on any command line (or VITA_JAX_DEBUG=1 in the environment) prints the traceback
before the line. Called in-process, `main([...])` returns the command's status on success and
raises SystemExit(status) after printing the line on failure.
"""

import argparse
import functools
import os
import sys
import traceback

from vita_jax.atomic import OutputExistsError, OutputOverlapsInputError

DEBUG_FLAG = "--debug"
DEBUG_ENV = "VITA_JAX_DEBUG"
USAGE_STATUS, FAILURE_STATUS, INTERRUPTED_STATUS = 2, 1, 130


class UsageError(Exception):
    """A malformed command line: a missing, unknown or invalid flag or value (exit status 2)."""


class CommandParser(argparse.ArgumentParser):
    """argparse with one-line usage errors (UsageError) and the --debug flag listed in --help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.add_argument(DEBUG_FLAG, action="store_true",
                          help=f"show the Python traceback of an error (or set {DEBUG_ENV}=1)")

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)")


def positive_int(text):
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def debug_requested(argv):
    return DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def describe(error):
    """(exit status, one-line message) for an exception raised by a command."""
    if isinstance(error, (UsageError, OutputExistsError, OutputOverlapsInputError)) or getattr(
            error, "exit_status", None) == USAGE_STATUS:
        status = USAGE_STATUS
    elif isinstance(error, KeyboardInterrupt):
        return INTERRUPTED_STATUS, "interrupted"
    else:
        status = FAILURE_STATUS
    if isinstance(error, OSError) and error.filename and error.strerror:
        message = f"{error.filename}: {error.strerror}"
    else:
        message = str(error).strip() or type(error).__name__
        if isinstance(error, KeyError):
            message = f"missing key {message}"
    lines = message.splitlines()
    if len(lines) > 1:
        message = f"{lines[0]} ... ({len(lines) - 1} more lines with --debug)"
    if not isinstance(error, (UsageError, OSError, ValueError)):
        message = f"{type(error).__name__}: {message}"
    return status, message


def command(run):
    """Wrap a command's `run(argv)` into `main(argv=None)` with the error handling above."""

    @functools.wraps(run)
    def main(argv=None):
        argv = list(sys.argv[1:] if argv is None else argv)
        debug = debug_requested(argv)
        try:
            status = run([arg for arg in argv if arg != DEBUG_FLAG])
        except SystemExit as exit_:  # --help (0), or a command's SystemExit("message")
            if exit_.code is None or isinstance(exit_.code, int):
                raise
            status, message = FAILURE_STATUS, str(exit_.code)
        except BaseException as error:  # noqa: BLE001 - every error becomes one line (and a status)
            if debug:
                traceback.print_exc()
            status, message = describe(error)
        else:
            return status or 0
        print(f"error: {message}", file=sys.stderr, flush=True)
        raise SystemExit(status)

    return main
