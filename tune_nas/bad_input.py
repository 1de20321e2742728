"""What every ``python -m tune_nas.*`` command shares: bad input is one line and exit code 2.

``OneLineParser`` replaces argparse's usage dump with the single error line (``DefaultsHelp``
shows the defaults that exist in ``--help``); ``number`` and
``plain_name`` build argparse types that name the flag, the value and the rule;
``unwritable_reason`` says why a directory could not be written before anything tries.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

EXIT_BAD_INPUT = 2
#: The largest seed NumPy's and Optuna's generators take (they are seeded with 32 bits).
SEED_MAX = 2**32 - 1
NAME_RULE = ("a plain directory name: not empty, no '/' and no control character (newline, tab, NUL), "
             "not '.' or '..', at most 255 bytes")


class DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows a flag's default where it has one; a flag whose default is None (it
    falls back to the space file, as its help says), an on/off flag, or one whose help already
    says it shows none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.nargs == 0 or "default" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse would print the usage as well
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def number(flag: str, kind: type = int, minimum: float | None = None, exclusive: bool = False,
           maximum: float | None = None) -> Callable[[str], float]:
    """An argparse type: ``kind(text)`` within ``(minimum, maximum]`` / ``[minimum, maximum]``,
    finite; both of its messages name the value and say the rule."""
    noun = "an integer" if kind is int else "a finite number"
    bounds = " and ".join(r for r in (
        None if minimum is None else f"{'>' if exclusive else '>='} {_shown(minimum)}",
        None if maximum is None else f"<= {_shown(maximum)}") if r)
    rule = f"{noun} {bounds}" if bounds else noun

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}; rule: {flag} must be {rule}") from None
        low_ok = minimum is None or (value > minimum if exclusive else value >= minimum)
        high_ok = maximum is None or value <= maximum
        if (isinstance(value, float) and not math.isfinite(value)) or not (low_ok and high_ok):
            raise argparse.ArgumentTypeError(f"{value} is not allowed; rule: {flag} must be {bounds or rule}")
        return value

    return parse


def _shown(bound: float) -> str:
    """A bound as people write it: 4294967295, not 4.29497e+09; 0.5 as 0.5."""
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


def plain_name(flag: str) -> Callable[[str], str]:
    """An argparse type for a name that becomes one directory (an experiment, a comparison)."""

    def parse(text: str) -> str:
        if (not text or "/" in text or any(ord(c) < 32 or ord(c) == 127 for c in text) or text in (".", "..")
                or len(text.encode(errors="surrogateescape")) > 255):
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed; rule: {flag} is {NAME_RULE}")
        return text

    return parse


def unwritable_reason(directory: Path) -> str | None:
    """Why ``directory`` cannot be written into (created where missing), or None if it can:
    the nearest part of it that exists must be a directory this user may write."""
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return "is a file" if existing == directory else f"is below the file {existing}"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    try:  # what access() cannot tell (root on a pseudo or read-only-mounted file system): try it
        os.rmdir(tempfile.mkdtemp(prefix=".tune_nas-probe-", dir=existing))
    except OSError as exc:
        return f"no directory can be created in {existing} ({exc.strerror or exc})"
    return None


def fail(prog: str, message: str) -> NoReturn:
    """Print ``prog: error: message`` on stderr and exit with code 2."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_BAD_INPUT)
