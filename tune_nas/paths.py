"""A user's path with ``~`` expanded, or one line saying why it cannot be.

``Path.expanduser`` raises a bare ``RuntimeError("Could not determine home directory.")`` for
``~someone`` when this machine has no user ``someone`` (or ``~`` without a home). Every path a
user types goes through :func:`expand_user` instead, so that the commands can refuse it in
their usual one line (exit code 2) before anything starts.
"""

from __future__ import annotations

import os
from pathlib import Path

TILDE_RULE = "rule: ~ and ~USER stand for the home directory of a user of this machine"


class UnknownHome(ValueError):
    """``~USER`` (or ``~``) in a path whose home directory this machine does not know."""


def expand_user(path: str | os.PathLike, flag: str = "") -> Path:
    """``Path(path).expanduser()``; :class:`UnknownHome` naming ``flag``, the value and the rule
    where the ``~`` part names no user here."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        head = os.fspath(path).split("/", 1)[0]
        who = f"no user {head[1:]!r}" if head != "~" else "no home directory ($HOME unset and no entry for this user)"
        named = f"{flag}{'' if flag.endswith(':') else ' '}" if flag else ""
        raise UnknownHome(f"{named}{os.fspath(path)}: {head} cannot be expanded: this machine has {who}; "
                          f"{TILDE_RULE}") from None
