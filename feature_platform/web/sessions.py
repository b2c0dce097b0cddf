"""Sessions, CSRF tokens and sign-in rate limiting for the web app.

The cookie holds only a random session id, signed with the app secret (itsdangerous); the
session itself is a row in `web_sessions`, so signing out or deactivating a person ends it on
the server, and a copied cookie dies with it. A session expires after `idle` without a request
and after `absolute` in any case. Each session has its own CSRF token, checked on every form.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from itsdangerous import BadSignature, Signer, URLSafeTimedSerializer

from feature_platform.store.db import as_utc, create_tables, metadata, utcnow

sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),  # sha256 of the cookie's id
    sa.Column("name", sa.String(200), nullable=False, index=True),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
)


def load_secret(home: Path) -> str:
    """FP_WEB_SECRET, or a random secret generated once under FP_HOME (mode 0600)."""
    from_env = os.environ.get("FP_WEB_SECRET")
    if from_env:
        return from_env
    path = Path(home) / "web_secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


@dataclass(frozen=True)
class Session:
    id_hash: str
    name: str
    csrf: str
    created_at: datetime
    expires_at: datetime


NOTICE_MAX_AGE_S = 600  # a notice tells what a form just did, not what it did last week


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    def __init__(
        self,
        engine: sa.Engine,
        secret: str,
        *,
        idle: timedelta = timedelta(minutes=30),
        absolute: timedelta = timedelta(hours=12),
    ) -> None:
        self.engine = engine
        self.signer = Signer(secret, salt="fp-web-session")
        self._secret = secret
        self.idle, self.absolute = idle, absolute
        create_tables(engine, sessions)

    def start(self, name: str, now: datetime | None = None) -> tuple[str, Session]:
        """A new session for `name`: (signed cookie value, session)."""
        now = now or utcnow()
        session_id = secrets.token_urlsafe(32)
        row = {
            "id_hash": _digest(session_id),
            "name": name,
            "csrf": secrets.token_urlsafe(32),
            "created_at": now,
            "last_seen": now,
            "expires_at": now + self.absolute,
        }
        with self.engine.begin() as conn:
            conn.execute(sessions.insert().values(**row))
        cookie = self.signer.sign(session_id.encode()).decode()
        return cookie, Session(row["id_hash"], name, row["csrf"], now, row["expires_at"])

    def resolve(self, cookie: str | None, now: datetime | None = None) -> Session | None:
        """The live session a cookie names, or None (bad signature, ended, idle or expired)."""
        if not cookie:
            return None
        try:
            session_id = self.signer.unsign(cookie.encode()).decode()
        except (BadSignature, UnicodeDecodeError):
            return None
        now = now or utcnow()
        id_hash = _digest(session_id)
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(sessions).where(sessions.c.id_hash == id_hash)).first()
        if row is None or row.ended_at is not None:
            return None
        if as_utc(row.expires_at) <= now or as_utc(row.last_seen) + self.idle <= now:
            return None
        if now - as_utc(row.last_seen) > timedelta(seconds=30):  # one write a half-minute
            with self.engine.begin() as conn:
                conn.execute(
                    sessions.update().where(sessions.c.id_hash == id_hash).values(last_seen=now)
                )
        return Session(row.id_hash, row.name, row.csrf, as_utc(row.created_at), row.expires_at)

    def seal_notice(self, session: Session, text: str) -> str:
        """`text` sealed for `session` alone, for the URL a form redirects to (post, redirect,
        get: reloading that page repeats no change). A link someone else made shows nothing
        here (it was sealed for another session), nor does one older than NOTICE_MAX_AGE_S.
        The URL carries the text and a signature, nothing that names the session."""
        return self._notices(session).dumps(text)

    def open_notice(self, session: Session, sealed: str | None) -> str:
        """The text `seal_notice` sealed for this session, or "" for anything else."""
        if not sealed:
            return ""
        try:
            text = self._notices(session).loads(sealed, max_age=NOTICE_MAX_AGE_S)
        except (BadSignature, ValueError):
            return ""
        return text if isinstance(text, str) else ""

    def _notices(self, session: Session) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self._secret, salt=f"fp-web-notice:{session.id_hash}")

    def end(self, session: Session, now: datetime | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sessions.update()
                .where(sessions.c.id_hash == session.id_hash)
                .values(ended_at=now or utcnow())
            )

    def end_all(self, name: str, now: datetime | None = None) -> None:
        end_sessions_of(self.engine, name, now)


def end_sessions_of(engine: sa.Engine, name: str, now: datetime | None = None) -> None:
    """Sign `name` out everywhere (after a password change: a stolen cookie stops working)."""
    create_tables(engine, sessions)
    with engine.begin() as conn:
        conn.execute(
            sessions.update()
            .where(sessions.c.name == name, sessions.c.ended_at.is_(None))
            .values(ended_at=now or utcnow())
        )


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), str(given).encode())


class LoginLimiter:
    """At most `attempts` failed sign-ins per `window` seconds per name, and `per_address`
    times as many per client address (several people may share one), so neither one address
    guessing many names nor many addresses guessing one name gets far. In-process: one
    server process (uvicorn's default) sees every attempt."""

    def __init__(self, attempts: int = 5, window: float = 300.0, per_address: int = 4) -> None:
        self.attempts, self.window = attempts, window
        self.limits = {"ip": attempts * per_address, "name": attempts}
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        found = self._failures.setdefault(key, deque())
        while found and found[0] <= now - self.window:
            found.popleft()
        return found

    def retry_after(self, client: str, name: str) -> float:
        """Seconds until another attempt is allowed (0 when allowed now)."""
        now = time.monotonic()
        with self._lock:
            waits = [
                self.window - (now - found[0])
                for kind, key in (("ip", f"ip:{client}"), ("name", f"name:{name}"))
                if len(found := self._recent(key, now)) >= self.limits[kind]
            ]
        return max(waits, default=0.0)

    def failed(self, client: str, name: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._failures) > 10_000:  # guessed names must not grow memory forever
                for key in list(self._failures):
                    if not self._recent(key, now):
                        del self._failures[key]
            for key in (f"ip:{client}", f"name:{name}"):
                self._recent(key, now).append(now)

    def succeeded(self, client: str, name: str) -> None:
        with self._lock:
            self._failures.pop(f"name:{name}", None)
