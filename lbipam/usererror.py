"""`UserError`: a mistake of the user's, told in one line instead of a traceback.

A bad or missing kubeconfig, a program that is not installed, a port already in use, a file that
cannot be read: any lbipam code may raise `UserError` (or a subclass) for these, also deep inside a
task group. `lbipam.cli.main` runs every subcommand through `run_command`, which prints
`lbipam COMMAND: MESSAGE` on stderr and returns exit code 2 (as grep and diff do for trouble).
Everything else keeps its traceback: that is lbipam's bug, and the traceback is what a report
needs. Imports nothing heavy (`lbipam --help` loads it).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C

A = TypeVar("A")


class UserError(Exception):
    """Something the user can fix: the message says what and, where it can, how."""


def user_errors(error: BaseException) -> list[UserError] | None:
    """The UserErrors `error` consists of, looking through exception groups (a task group wraps
    the error of the task that failed); None when anything but a UserError is in there, so that a
    bug is never hidden behind a one-line message. Cancellations of the sibling tasks are skipped."""
    if isinstance(error, UserError):
        return [error]
    if isinstance(error, BaseExceptionGroup):
        found: list[UserError] = []
        for inner in error.exceptions:
            if _is_cancellation(inner):
                continue
            leaves = user_errors(inner)
            if leaves is None:
                return None
            found += leaves
        return found or None
    return None


def _is_cancellation(error: BaseException) -> bool:
    import asyncio  # noqa: PLC0415  # only when a group is looked through: `lbipam --help` stays fast

    return isinstance(error, asyncio.CancelledError)


def one_line(message: str) -> str:
    """`message` on one line: a YAML or OS error may span several."""
    return " ".join(message.split())


def run_command(command: str, run: Callable[[A], int], args: A) -> int:
    """`run(args)`, with user errors as `lbipam COMMAND: MESSAGE` on stderr and exit code 2, and
    a Ctrl-C that arrives before the command handles signals as a quiet exit 130."""
    try:
        return run(args)
    except KeyboardInterrupt:
        sys.stderr.write(f"lbipam {command}: interrupted\n")
        return EXIT_INTERRUPTED
    except BaseException as error:
        found = user_errors(error)
        if found is None:
            raise
        for message in dict.fromkeys(one_line(str(e)) for e in found):
            sys.stderr.write(f"lbipam {command}: {message}\n")
        return EXIT_USER_ERROR
