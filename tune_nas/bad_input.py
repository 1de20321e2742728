"""What every ``python -m tune_nas.*`` command shares: bad input is one line and exit code 2.

``OneLineParser`` replaces argparse's usage dump with the single error line; ``number``
builds argparse types that name the flag, the value and the rule.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import NoReturn

EXIT_BAD_INPUT = 2


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse would print the usage as well
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def number(flag: str, kind: type = int, minimum: float | None = None, exclusive: bool = False,
           maximum: float | None = None) -> Callable[[str], float]:
    """An argparse type: ``kind(text)`` within ``(minimum, maximum]`` / ``[minimum, maximum]``."""
    noun = "an integer" if kind is int else "a number"
    rule = " and ".join(r for r in (
        None if minimum is None else f"{'>' if exclusive else '>='} {minimum:g}",
        None if maximum is None else f"<= {maximum:g}") if r)

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        low_ok = minimum is None or (value > minimum if exclusive else value >= minimum)
        high_ok = maximum is None or value <= maximum
        if (isinstance(value, float) and not math.isfinite(value)) or not (low_ok and high_ok):
            raise argparse.ArgumentTypeError(f"{value} is not allowed; rule: {flag} must be {rule}")
        return value

    return parse


def fail(prog: str, message: str) -> NoReturn:
    """Print ``prog: error: message`` on stderr and exit with code 2."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_BAD_INPUT)
