"""Backup and restore of the database: SQLite through the online backup API, PostgreSQL through pg_dump.

    python -m storage.backup create  --db URL --out FILE
    python -m storage.backup restore --db URL --from FILE [--force]

``--db`` defaults to the app's ``DATABASE_URL`` setting. SQLite backups use ``sqlite3``'s online
backup API: a consistent snapshot (WAL content included) taken while the app keeps running, written
to a temp file, checked with ``PRAGMA integrity_check`` and renamed into place. PostgreSQL backups
are ``pg_dump --format=custom`` archives restored with ``pg_restore``; the binaries come from PATH
or ``/usr/lib/postgresql/<version>/bin`` (newest first). The password only travels in the
``PGPASSWORD`` environment variable of the child process, never on a command line or in a log.
A restore refuses a target that already holds tables unless ``--force``.
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from logsetup import configure_cli_logging

log = logging.getLogger(__name__)


class BackupError(RuntimeError):
    """A backup or restore that could not be done (the message is safe to show)."""


def _masked(url: URL) -> str:
    return url.render_as_string(hide_password=True)


# --- SQLite ----------------------------------------------------------------------------------


def _sqlite_path(url: URL) -> Path:
    database = url.database or ""
    if database in ("", ":memory:") or url.query.get("mode") == "memory":
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return Path(database).expanduser()


def _integrity_ok(connection: sqlite3.Connection) -> bool:
    return connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _sqlite_tables(connection: sqlite3.Connection) -> list[str]:
    rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    return [row[0] for row in rows]


def sqlite_create(url: URL, out: Path) -> None:
    """Copy a live SQLite database into ``out`` (single self-contained file, rollback journal)."""
    source_path = _sqlite_path(url)
    if not source_path.exists():
        raise BackupError(f"no SQLite database at {source_path}")
    tmp = out.with_name(out.name + ".tmp")
    tmp.unlink(missing_ok=True)
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True, timeout=30)
    target = sqlite3.connect(tmp)
    try:
        source.backup(target)  # page-by-page copy of one consistent snapshot, WAL frames included
        target.execute("PRAGMA journal_mode=DELETE")  # the copy needs no -wal/-shm companions
        if not _integrity_ok(target):
            raise BackupError("the backup copy failed PRAGMA integrity_check")
    finally:
        target.close()
        source.close()
    os.replace(tmp, out)


def sqlite_restore(url: URL, backup: Path, *, force: bool) -> None:
    """Replace the content of a SQLite database by the backup, through the backup API."""
    target_path = _sqlite_path(url)
    source = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
    try:
        if not _integrity_ok(source):
            raise BackupError(f"{backup} is not a sound SQLite backup (integrity_check failed)")
        target_path.parent.mkdir(parents=True, exist_ok=True)
        target = sqlite3.connect(target_path, timeout=30)
        try:
            tables = _sqlite_tables(target)
            if tables and not force:
                raise BackupError(f"target database is not empty ({len(tables)} tables); use --force to overwrite")
            source.backup(target)  # writes through SQLite's own locking, WAL-safe for a live file
            target.execute("PRAGMA journal_mode=WAL")
        finally:
            target.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"SQLite restore failed: {exc}") from exc
    finally:
        source.close()


# --- PostgreSQL ------------------------------------------------------------------------------


def find_pg_tool(name: str) -> str:
    """Return the path of ``pg_dump`` / ``pg_restore``: PATH first, then Debian's versioned folders."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
        reverse=True,
    )
    if not candidates:
        raise BackupError(f"{name} not found on PATH nor in /usr/lib/postgresql/*/bin (install postgresql-client)")
    return candidates[0]


def _pg_connection(url: URL) -> tuple[str, dict[str, str]]:
    """Return a libpq connection string without the password, and the env holding it."""
    parts = {
        "host": url.host or "",
        "port": str(url.port or ""),
        "user": url.username or "",
        "dbname": url.database or "",
    }
    for key in ("sslmode", "options", "sslrootcert"):
        value = url.query.get(key)
        if isinstance(value, str):
            parts[key] = value
    conninfo = " ".join(f"{key}='{_escape(value)}'" for key, value in parts.items() if value)
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    return conninfo, env


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _run(args: list[str], env: dict[str, str], what: str) -> None:
    # The connection string carries no password (PGPASSWORD does), but keep logs to the tool name.
    log.info("running %s", Path(args[0]).name)
    result = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BackupError(f"{what} failed (exit {result.returncode}): {result.stderr.strip()}")


def _pg_table_count(url: URL) -> int:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return connection.execute(
                text(
                    "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') "
                    "AND schemaname NOT LIKE 'pg_toast%'"
                )
            ).scalar_one()
    finally:
        engine.dispose()


def postgres_create(url: URL, out: Path) -> None:
    """Dump the database to a custom-format archive (atomic: temp file, then rename)."""
    conninfo, env = _pg_connection(url)
    tmp = out.with_name(out.name + ".tmp")
    tmp.unlink(missing_ok=True)
    _run(
        [find_pg_tool("pg_dump"), "--format=custom", "--no-password", f"--file={tmp}", f"--dbname={conninfo}"],
        env,
        "pg_dump",
    )
    os.replace(tmp, out)


def postgres_restore(url: URL, backup: Path, *, force: bool) -> None:
    """Restore a custom-format archive in one transaction; objects are owned by the connecting user."""
    tables = _pg_table_count(url)
    if tables and not force:
        raise BackupError(f"target database is not empty ({tables} tables); use --force to overwrite")
    conninfo, env = _pg_connection(url)
    args = [find_pg_tool("pg_restore"), "--no-password", "--no-owner", "--no-privileges", "--single-transaction"]
    args += ["--exit-on-error"]
    if tables:
        args += ["--clean", "--if-exists"]
    _run([*args, f"--dbname={conninfo}", str(backup)], env, "pg_restore")


# --- entry points ----------------------------------------------------------------------------


def create(db_url: str | URL, out: str | Path) -> Path:
    """Back up ``db_url`` into ``out`` and return the path written."""
    url = make_url(db_url)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if url.get_backend_name() == "sqlite":
        sqlite_create(url, out)
    elif url.get_backend_name() == "postgresql":
        postgres_create(url, out)
    else:
        raise BackupError(f"unsupported backend: {url.get_backend_name()}")
    log.info("backup of %s written to %s", _masked(url), out)
    return out


def restore(db_url: str | URL, backup: str | Path, *, force: bool = False) -> None:
    """Restore ``backup`` into ``db_url``; refuses a non-empty target unless ``force``."""
    url = make_url(db_url)
    backup = Path(backup)
    if not backup.is_file():
        raise BackupError(f"no backup file at {backup}")
    if url.get_backend_name() == "sqlite":
        sqlite_restore(url, backup, force=force)
    elif url.get_backend_name() == "postgresql":
        postgres_restore(url, backup, force=force)
    else:
        raise BackupError(f"unsupported backend: {url.get_backend_name()}")
    log.info("%s restored into %s", backup, _masked(url))


def _default_url() -> str:
    from settings import Settings

    return Settings().database_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m storage.backup", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    create_cmd = commands.add_parser("create", help="write a backup file")
    create_cmd.add_argument("--db", help="database URL (default: the app's DATABASE_URL setting)")
    create_cmd.add_argument("--out", required=True, type=Path, help="backup file to write")
    restore_cmd = commands.add_parser("restore", help="restore a backup file")
    restore_cmd.add_argument("--db", help="database URL (default: the app's DATABASE_URL setting)")
    restore_cmd.add_argument("--from", dest="source", required=True, type=Path, help="backup file to read")
    restore_cmd.add_argument("--force", action="store_true", help="overwrite a non-empty target database")
    args = parser.parse_args(argv)
    configure_cli_logging("INFO")

    url = make_url(args.db or _default_url())
    try:
        if args.command == "create":
            path = create(url, args.out)
            print(f"backup written: {path} ({path.stat().st_size} bytes)")
        else:
            restore(url, args.source, force=args.force)
            print(f"restored {args.source} into {_masked(url)}")
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
