"""The SQLite file's schema and its migrations.

Owns: the tables (`migrate` creates what is missing), `SCHEMA_VERSION`, and
bringing a file from an older server up to date: in one transaction, so a
crash leaves the old schema or the new one, never a version row that lies.
Must not: read or write chat data (reactor/chat/storage.py does).
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 3  # 2: groups.open; 3: messages.notice

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    id      INTEGER PRIMARY KEY,
    name    TEXT NOT NULL,              -- as first written
    key     TEXT NOT NULL UNIQUE,       -- lower case, for lookups
    pwhash  TEXT,                       -- NULL for --auth none accounts
    cursor  INTEGER NOT NULL DEFAULT 0, -- highest message id acknowledged
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS groups (
    id      INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused after deletion
    name    TEXT NOT NULL,
    key     TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    open    INTEGER NOT NULL DEFAULT 0 -- 1: anyone may join (/join, IRC JOIN)
);
CREATE TABLE IF NOT EXISTS members (
    group_id     INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    user_id      INTEGER NOT NULL REFERENCES users(id),
    joined_after INTEGER NOT NULL,  -- member sees live/replayed ids above this
    PRIMARY KEY (group_id, user_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS members_by_user ON members(user_id);
CREATE TABLE IF NOT EXISTS messages (
    id         INTEGER PRIMARY KEY,  -- increases in the order stored
    sender     TEXT NOT NULL,        -- names are immutable, so stored as shown
    to_user    INTEGER,              -- set for private messages
    to_name    TEXT,
    group_id   INTEGER,              -- set for group messages
    group_name TEXT,
    sender_id  INTEGER NOT NULL,
    text       TEXT NOT NULL,
    ts         REAL NOT NULL,
    notice     INTEGER NOT NULL DEFAULT 0  -- 1: sent as an IRC NOTICE
);
CREATE INDEX IF NOT EXISTS messages_private ON messages(to_user, sender_id, id)
    WHERE to_user IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_sent ON messages(sender_id, to_user, id)
    WHERE to_user IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_group ON messages(group_id, id)
    WHERE group_id IS NOT NULL;
"""

#: Columns added after schema 1, oldest first: (table, column, its definition).
_ADDED = (
    ("groups", "open", "INTEGER NOT NULL DEFAULT 0"),  # 2: anyone may join
    ("messages", "notice", "INTEGER NOT NULL DEFAULT 0"),  # 3: an IRC NOTICE
)


def migrate(db: sqlite3.Connection, path: str) -> None:
    """Create what is missing and bring an older file up to
    `SCHEMA_VERSION`; raise RuntimeError for a file of a newer server.
    `db` is in autocommit mode (isolation_level None)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        for statement in _SCHEMA.split(";"):  # every one is ... IF NOT EXISTS
            if statement.strip():
                db.execute(statement)
        row: tuple[int | None] = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        if row[0] is not None and row[0] > SCHEMA_VERSION:
            raise RuntimeError(
                f"{path} has schema {row[0]}, newer than this server ({SCHEMA_VERSION})"
            )
        for table, column, definition in _ADDED:
            if column not in {r[1] for r in db.execute(f"PRAGMA table_info({table})")}:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
        if row[0] is None:
            db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
        elif row[0] < SCHEMA_VERSION:
            db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
