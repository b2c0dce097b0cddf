"""An append-only audit log: who did what, to what, when.

The API only ever inserts; nothing here updates or deletes an entry. Writers that change state
pass their open connection so the entry commits (or rolls back) with the change it describes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from feature_platform.governance.identity import Actor
from feature_platform.store.db import as_utc, create_tables, metadata, utcnow

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(100), nullable=False, index=True),
    sa.Column("target", sa.String(300), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),  # JSON
)

AUDIT_COLUMNS = ["id", "at", "actor", "action", "target", "detail"]


class AuditLog:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        create_tables(engine, audit_log)

    def record(
        self,
        actor: Actor | str,
        action: str,
        target: str = "",
        detail: Mapping[str, Any] | None = None,
        *,
        conn: sa.Connection | None = None,
        now: datetime | None = None,
    ) -> None:
        """Append one entry; inside `conn`'s transaction when given. For an `Actor`, how the
        identity was established is kept in the detail (`via`: session, FP_USER, os-user,
        system), so a command-line identity is recorded as such."""
        detail = dict(detail or {})
        if isinstance(actor, Actor):
            detail.setdefault("via", actor.via)
        values = {
            "at": now or utcnow(),
            "actor": str(actor),
            "action": action,
            "target": target,
            "detail": json.dumps(detail, default=str, sort_keys=True),
        }
        if conn is not None:
            conn.execute(audit_log.insert().values(**values))
            return
        with self.engine.begin() as own:
            own.execute(audit_log.insert().values(**values))

    def entries(
        self,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Entries oldest first, optionally filtered (`since` <= at < `until`), all in SQL;
        with `limit`, only the newest `limit` of them (still oldest first); `detail` decoded."""
        query = sa.select(audit_log)
        for column, value in (("actor", actor), ("action", action), ("target", target)):
            if value is not None:
                query = query.where(audit_log.c[column] == value)
        if since is not None:
            query = query.where(audit_log.c.at >= as_utc(since))
        if until is not None:
            query = query.where(audit_log.c.at < as_utc(until))
        if limit is not None:
            newest = query.order_by(audit_log.c.id.desc()).limit(limit).subquery()
            query = sa.select(newest).order_by(newest.c.id)
        else:
            query = query.order_by(audit_log.c.id)
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).mappings().all(), columns=AUDIT_COLUMNS)
        frame["at"] = pd.to_datetime(frame["at"], utc=True)
        frame["detail"] = frame["detail"].map(json.loads)
        return frame
