"""The PostgreSQL schema of a cluster and the connections to it.

Owns: the tables every node shares (chat data, nodes, sessions), their
version, the advisory lock keys, and opening a connection. Must not: hold
a connection of its own or know about epochs, sessions or the bus (those
are reactor/cluster/pgstore.py and reactor/cluster/presence.py).
"""

from __future__ import annotations

from typing import Any

import psycopg

from reactor import limits

SCHEMA_VERSION = 3  # 2: groups.open; 3: messages.notice

#: Advisory lock keys (one 64-bit space per database): the order lock, and
#: the lock that lets one node at a time create the schema.
ORDER_KEY = 0x63686174_0001
MIGRATE_KEY = 0x63686174_0002

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS names (key TEXT PRIMARY KEY);  -- users' and groups'
CREATE TABLE IF NOT EXISTS users (
    id      BIGSERIAL PRIMARY KEY,
    name    TEXT NOT NULL,
    key     TEXT NOT NULL UNIQUE,
    pwhash  TEXT,
    cursor  BIGINT NOT NULL DEFAULT 0,
    created DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS groups (
    id      BIGSERIAL PRIMARY KEY,
    name    TEXT NOT NULL,
    key     TEXT NOT NULL UNIQUE,
    created DOUBLE PRECISION NOT NULL
);
-- 2: anyone may join (/join, IRC JOIN); else invite-only.
ALTER TABLE groups ADD COLUMN IF NOT EXISTS open BOOLEAN NOT NULL DEFAULT false;
-- No foreign keys: a group deleted on one node while another adds to it
-- must not fail that node's whole transaction.
CREATE TABLE IF NOT EXISTS members (
    group_id     BIGINT NOT NULL,
    user_id      BIGINT NOT NULL,
    joined_after BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX IF NOT EXISTS members_by_user ON members(user_id);
CREATE SEQUENCE IF NOT EXISTS message_ids;
CREATE TABLE IF NOT EXISTS messages (
    id         BIGINT PRIMARY KEY,  -- from message_ids, under cluster:order
    sender     TEXT NOT NULL,
    to_user    BIGINT,
    to_name    TEXT,
    group_id   BIGINT,
    group_name TEXT,
    sender_id  BIGINT NOT NULL,
    text       TEXT NOT NULL,
    ts         DOUBLE PRECISION NOT NULL,
    recipients TEXT[] NOT NULL      -- user keys, as decided when sent
);
-- 3: sent as an IRC NOTICE.
ALTER TABLE messages ADD COLUMN IF NOT EXISTS notice BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS messages_private ON messages(to_user, sender_id, id)
    WHERE to_user IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_sent ON messages(sender_id, to_user, id)
    WHERE to_user IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_group ON messages(group_id, id)
    WHERE group_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS nodes (
    name    TEXT PRIMARY KEY,
    seen    TIMESTAMPTZ NOT NULL,   -- the node's last heartbeat
    started TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    user_key TEXT PRIMARY KEY,      -- one session per user, cluster-wide
    node     TEXT NOT NULL,
    conn_id  BIGINT NOT NULL,
    since    TIMESTAMPTZ NOT NULL DEFAULT now()
);
"""

MSG_COLS = "id, sender, to_name, group_name, text, ts, notice"


def connect(url: str) -> psycopg.Connection[Any]:
    """A connection in autocommit mode (transactions are explicit)."""
    return psycopg.connect(url, autocommit=True, connect_timeout=limits.PG_CONNECT_SECONDS)


def migrate(url: str) -> None:
    """Create the schema if it is missing (one node at a time)."""
    with connect(url) as db:
        db.execute("BEGIN")
        db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_KEY,))
        db.execute(_SCHEMA)
        row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        if row is None or row[0] is None:
            db.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION,))
        elif row[0] < SCHEMA_VERSION:  # the ALTERs above brought it up to date
            db.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION,))
        elif row[0] > SCHEMA_VERSION:
            db.execute("ROLLBACK")
            raise RuntimeError(f"the database has schema {row[0]}, newer than {SCHEMA_VERSION}")
        db.execute("COMMIT")
