"""The one rule for showing a URL that may hold credentials: a study storage
(``postgresql://user:secret@host/db``) or a trials directory (``s3://key:secret@bucket``).

Every URL tune_nas prints or writes (error messages, ``experiment.json``, ``summary.json``,
the study report) goes through :func:`mask_url`. It works on the text alone, with no
database driver or filesystem imported, and never fails: what cannot be parsed as a URL is
shown only after its last ``@``.
"""

from __future__ import annotations

import re

MASK = "***"

#: ``scheme://`` then the user info as SQLAlchemy reads it (a user without ``:/@``, an
#: optional ``:password`` that may hold anything but ``@``), up to the ``@`` before the host.
_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@]*)(?::(?P<password>[^@]*))?@")
#: A password given as a query parameter (``?password=...``, ``&passwd=...``).
_QUERY_PASSWORD = re.compile(r"(?i)([?&](?:password|passwd)=)[^&#]*")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def mask_url(url: str, hide_user: bool = False) -> str:
    """``url`` with its password (in the user info or as a ``password``/``passwd`` query
    parameter) replaced by ``***``; with ``hide_user`` the whole user info is (an object
    store's access key id is half of a credential): ``s3://***@bucket/prefix``."""
    if not _SCHEME.match(url):
        return url.rsplit("@", 1)[-1]
    masked = _QUERY_PASSWORD.sub(lambda m: m.group(1) + MASK, url)
    found = _USERINFO.match(masked)
    if found is None:
        return masked
    rest = masked[found.end():]
    if hide_user:
        return f"{found['scheme']}{MASK}@{rest}"
    if found["password"] is None:
        return masked
    return f"{found['scheme']}{found['user']}:{MASK}@{rest}"
