"""Round attempts: how a round whose run failed for good is tried again.

A sensor never re-requests a run key it has used, so a round whose open or retrain run fails
after Dagster's own retries would stall its program forever. Once the cause is fixed, a lead
says so (`feature-platform rounds retry ROUND`): the round's attempt number goes up, and the
sensors request the same work under a new run key (`retrain:round-003:attempt-2`). Attempt 1
keeps the plain key, so a round that never failed is requested exactly once, as before.
Every retry is recorded (who, why, when) and audited.
"""

from __future__ import annotations

import sqlalchemy as sa

from feature_platform.errors import ConcurrentChangeError
from feature_platform.governance import require
from feature_platform.governance.audit import AuditLog
from feature_platform.governance.identity import Actor, as_actor
from feature_platform.governance.roles import AnnotatorRegistry
from feature_platform.names import check_name
from feature_platform.store.db import create_tables, metadata, utcnow, write_transaction

round_attempts = sa.Table(
    "round_attempts",
    metadata,
    sa.Column("round", sa.String(128), primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("requested_by", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)


def run_key(kind: str, round_key: str, attempt: int) -> str:
    """The run key of `kind` work (open, retrain) on a round at `attempt`."""
    return f"{kind}:{round_key}" if attempt <= 1 else f"{kind}:{round_key}:attempt-{attempt}"


class RoundAttempts:
    def __init__(self, engine: sa.Engine, people: AnnotatorRegistry) -> None:
        self.engine = engine
        self.people = people
        self.audit = AuditLog(engine)
        create_tables(engine, round_attempts)

    def current(self) -> dict[str, int]:
        """Each retried round's attempt number (a round not listed is at attempt 1)."""
        query = sa.select(round_attempts.c.round, sa.func.max(round_attempts.c.attempt)).group_by(
            round_attempts.c.round
        )
        with self.engine.connect() as conn:
            return {round_key: attempt for round_key, attempt in conn.execute(query)}

    def retry(self, round_key: str, reason: str = "", actor: Actor | str | None = None) -> int:
        """Start the next attempt of `round_key` (leads and admins); returns its number."""
        check_name(round_key, "round")
        acting = as_actor(actor)
        require(acting, "manage_queue", self.people)
        for _ in range(5):
            try:
                return self._next_attempt(round_key, reason, acting)
            except sa.exc.IntegrityError:
                continue  # another retry of this round took the number first (Postgres)
        raise ConcurrentChangeError(
            f"Round {round_key} was retried by others at the same moment five times in a row; "
            f"nothing was recorded for this request, run it again."
        )

    def _next_attempt(self, round_key: str, reason: str, acting: Actor) -> int:
        now = utcnow()
        with write_transaction(self.engine) as conn:
            latest = conn.execute(
                sa.select(sa.func.max(round_attempts.c.attempt)).where(
                    round_attempts.c.round == round_key
                )
            ).scalar()
            attempt = (latest or 1) + 1
            conn.execute(
                round_attempts.insert().values(
                    round=round_key,
                    attempt=attempt,
                    requested_by=acting.name,
                    reason=reason,
                    at=now,
                )
            )
            self.audit.record(
                acting,
                "round.retry",
                round_key,
                {"attempt": attempt, "reason": reason},
                conn=conn,
                now=now,
            )
        return attempt
