"""The embedded server's SQLite file: created private, opened durable, read back safely.

    connect(path) -> sqlite3.Connection      # the file 0600, WAL and synchronous=FULL, the schema
    load_objects(conn) -> [(key, namespace, name, object)]

SQLite gives the -wal, -shm and -journal companions the mode of the database file, so creating the
file 0600 keeps all of them private (the objects include Secrets). An object an older version
stored unchecked (a lone surrogate, NaN, nesting no walk survives) is repaired as it is read
(`jsonsafe.load_stored`) and written back; one that is not a JSON object at all is left out. Either
gets a log line, and the server starts and serves every list. Called by `store.py` at open.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
from typing import Any

from lbipam.apiserver.storage import jsonsafe

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    key TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    rv INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (key, namespace, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
"""


def connect(path: str) -> sqlite3.Connection:
    """Open (creating it 0600 if new) the database at `path`, or ":memory:"."""
    if path != ":memory:":
        _create_private(path)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    if path != ":memory:":
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(_SCHEMA)
    return conn


def _create_private(path: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        if os.stat(path).st_mode & 0o077:
            log.warning("the database %s is readable by others than its owner (chmod 600 it)", path)
        return
    os.close(fd)


def load_objects(conn: sqlite3.Connection) -> list[tuple[str, str, str, dict[str, Any]]]:
    """Every stored object that can be served, repaired where needed (see the module docstring)."""
    loaded: list[tuple[str, str, str, dict[str, Any]]] = []
    repaired: list[tuple[str, str, str, str]] = []
    for key, namespace, name, data in conn.execute("SELECT key, namespace, name, data FROM objects"):
        where = f"key={key} namespace={namespace} name={name}"
        try:
            obj, changes = jsonsafe.load_stored(data)
        except (ValueError, RecursionError) as exc:
            log.warning("stored object left out: not JSON %s error=%s", where, exc)
            continue
        if not isinstance(obj, dict):
            log.warning("stored object left out: not an object %s", where)
            continue
        if changes:
            more = " ..." if len(changes) > 5 else ""
            log.warning("stored object repaired %s changes=%s%s", where, "; ".join(changes[:5]), more)
            repaired.append((json.dumps(obj, separators=(",", ":")), key, namespace, name))
        loaded.append((key, namespace, name, obj))
    if repaired:
        _write_back(conn, repaired)
    return loaded


def _write_back(conn: sqlite3.Connection, rows: list[tuple[str, str, str, str]]) -> None:
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("UPDATE objects SET data = ? WHERE key = ? AND namespace = ? AND name = ?", rows)
        conn.execute("COMMIT")
    except sqlite3.Error as exc:  # e.g. a full disk: served repaired, stored with the next write
        log.warning("repaired objects not written back: %s", exc)
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
