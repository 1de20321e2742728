"""Where the Optuna study lives: SQLite in the experiment directory (only the driver writes
it), or an external database (PostgreSQL, MySQL) shared by many experiments.

Passwords never come from a file in git and are never written into ``trials/``: give them
through the environment (``PGPASSWORD`` for PostgreSQL) or the database's own mechanisms;
every URL tune_nas writes or prints has its password masked.
"""

from __future__ import annotations

from tune_nas.storage.masking import mask_url  # the one masker; launch and ray_tune import it from here

SCHEMES = ("sqlite", "postgresql", "mysql")


class StorageError(ValueError):
    """A storage URL that cannot be used; the message is one line with the masked URL."""


def open_storage(url: str):
    """An Optuna RDB storage for ``url`` (SQLite gets a generous lock timeout)."""
    import optuna

    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


def warm_up() -> None:
    """Import and exercise what opening an RDB study costs (SQLAlchemy, alembic, Optuna's
    models: ~2 s) on an in-memory SQLite database, e.g. in a thread while Ray starts, so that
    opening the experiment's study later takes milliseconds. Nothing is written."""
    open_storage("sqlite:///:memory:")


def check_storage(url: str) -> None:
    """Raise :class:`StorageError` unless ``url`` names a reachable database we support."""
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StorageError(f"--storage {mask_url(url)}: not a database URL ({exc}); rule: "
                           "dialect://user@host[:port]/database") from None
    has_password = bool(parsed.password) or any(
        k.lower() in ("password", "passwd") for k in parsed.query)
    if has_password:
        raise StorageError(f"--storage {mask_url(url)}: the URL holds a password; rule: give it "
                           "through the environment (PGPASSWORD for PostgreSQL) so that it is "
                           "never written into trials/ or shell history")
    if scheme not in SCHEMES:
        raise StorageError(f"--storage {mask_url(url)}: unsupported scheme {scheme!r}; rule: "
                           f"one of {', '.join(s + '://' for s in SCHEMES)}")
    database = parsed.database or ""
    if scheme == "sqlite" and (database in ("", ":memory:") or "memory" in str(parsed.query.get("mode", ""))
                               or database.startswith("file::memory:")):
        raise StorageError(f"--storage {mask_url(url)}: an in-memory SQLite database (gone with its "
                           "connection: the summary, the study command and --resume open their own); rule: a "
                           "file (sqlite:///PATH) or a database server")
    try:
        open_storage(url)
    except ModuleNotFoundError as exc:
        raise StorageError(f"--storage {mask_url(url)}: the database driver {exc.name!r} is not "
                           "installed; rule: pip install psycopg2-binary (postgresql+psycopg2://) "
                           "or 'psycopg[binary]' (postgresql://)") from None
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageError(f"--storage {mask_url(url)}: cannot open the database "
                           f"({type(exc).__name__}: {reason[:300]}); rule: a reachable database, "
                           "password from the environment (e.g. PGPASSWORD)") from None
