"""Passwords for the web app: stored only as scrypt hashes (standard library), one row a person.

A hash is `scrypt(password, salt=16 random bytes, n=2**14, r=8, p=1)`, 32 bytes; the parameters
are stored with it so they can be raised later without invalidating old hashes. Verification
compares in constant time and, for an unknown name, still spends one scrypt so timing does not
tell who exists. Who a person is and their role stay in the people registry (`roles.py`).

API tokens let a machine client (e.g. a downstream system posting feedback) act as a person
without a browser session: `fpt_` + 32 random bytes, shown once, stored only as a SHA-256
hash (a token is random, not a password: no slow hash needed), revocable. The person's role
decides what a token may do, like their session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

import sqlalchemy as sa

from feature_platform.errors import FeaturePlatformError
from feature_platform.governance.audit import AuditLog
from feature_platform.governance.identity import Actor, as_actor
from feature_platform.governance.roles import AnnotatorRegistry, PermissionDeniedError
from feature_platform.store.db import create_tables, metadata, utcnow

SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_BYTES, SALT_BYTES = 2**14, 8, 1, 32, 16
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # scrypt's cost grows with the input: refuse absurd ones

credentials = sa.Table(
    "governance_credentials",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("salt", sa.LargeBinary(64), nullable=False),
    sa.Column("hash", sa.LargeBinary(128), nullable=False),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("r", sa.Integer, nullable=False),
    sa.Column("p", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


api_tokens = sa.Table(
    "governance_api_tokens",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, index=True),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)
TOKEN_PREFIX = "fpt_"


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class WeakPasswordError(FeaturePlatformError):
    """A password too short or too long to accept."""


def _hash(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=128 * r * n * 2, dklen=KEY_BYTES
    )


# Spent on unknown names so a failed sign-in takes as long whether or not the person exists.
_DUMMY_SALT = secrets.token_bytes(SALT_BYTES)


class Credentials:
    def __init__(self, engine: sa.Engine, registry: AnnotatorRegistry | None = None) -> None:
        self.engine = engine
        self.registry = registry or AnnotatorRegistry(engine)
        self.audit: AuditLog = self.registry.audit
        create_tables(engine, credentials, api_tokens)

    def set_password(
        self,
        name: str,
        password: str,
        *,
        actor: Actor | str | None = None,
        now: datetime | None = None,
    ) -> None:
        """Store a new hash for a registered person (replacing any previous one), audited.
        `actor` (default: the current actor) is the person themselves or may manage people."""
        self.registry.get(name)  # raises UnknownAnnotatorError with a hint
        acting = as_actor(actor)
        self._may_manage(name, acting, "set the password")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise WeakPasswordError(
                f"The password for {name!r} is too short: at least {MIN_PASSWORD_LENGTH} "
                "characters."
            )
        if len(password) > MAX_PASSWORD_LENGTH:
            raise WeakPasswordError(f"Passwords are limited to {MAX_PASSWORD_LENGTH} characters.")
        salt = secrets.token_bytes(SALT_BYTES)
        values = {
            "salt": salt,
            "hash": _hash(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P),
            "n": SCRYPT_N,
            "r": SCRYPT_R,
            "p": SCRYPT_P,
            "updated_at": now or utcnow(),
        }
        with self.engine.begin() as conn:
            updated = conn.execute(
                credentials.update().where(credentials.c.name == name).values(**values)
            )
            if updated.rowcount == 0:
                conn.execute(credentials.insert().values(name=name, **values))
            self.audit.record(acting, "person.set_password", name, conn=conn, now=now)

    def has_password(self, name: str) -> bool:
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    sa.select(credentials.c.name).where(credentials.c.name == name)
                ).first()
                is not None
            )

    def verify(self, name: str, password: str) -> bool:
        """Whether `password` is `name`'s. False for unknown names or absurd lengths."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(credentials).where(credentials.c.name == name)).first()
        if len(password) > MAX_PASSWORD_LENGTH:
            return False
        if row is None:
            _hash(password, _DUMMY_SALT, SCRYPT_N, SCRYPT_R, SCRYPT_P)
            return False
        candidate = _hash(password, bytes(row.salt), row.n, row.r, row.p)
        return hmac.compare_digest(candidate, bytes(row.hash))

    # -- API tokens ------------------------------------------------------------------------

    def _may_manage(self, name: str, acting: Actor, what: str) -> None:
        if acting.name != name or acting.is_system:
            try:
                self.registry.require(acting, "manage_people")
            except PermissionDeniedError as exc:
                raise PermissionDeniedError(
                    f"{acting.name!r} may not {what} for {name!r}: only they or an admin "
                    f"may. ({exc})"
                ) from exc

    def issue_token(self, name: str, label: str = "", *, actor: Actor | str | None = None) -> str:
        """A new API token acting as `name` (registered), returned once; audited."""
        self.registry.get(name)
        acting = as_actor(actor)
        self._may_manage(name, acting, "issue an API token")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(
                api_tokens.insert().values(
                    id_hash=_token_hash(token),
                    name=name,
                    label=label[:200],
                    created_at=utcnow(),
                    revoked_at=None,
                )
            )
            self.audit.record(acting, "person.issue_token", name, {"label": label}, conn=conn)
        return token

    def token_owner(self, token: str | None) -> str | None:
        """The person a live token acts as, or None (unknown, revoked, malformed)."""
        if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(api_tokens.c.name).where(
                    api_tokens.c.id_hash == _token_hash(token), api_tokens.c.revoked_at.is_(None)
                )
            ).first()
        return None if row is None else str(row.name)

    def revoke_tokens(self, name: str, *, actor: Actor | str | None = None) -> int:
        """Revoke every live token of `name`; returns how many."""
        acting = as_actor(actor)
        self._may_manage(name, acting, "revoke API tokens")
        with self.engine.begin() as conn:
            done = conn.execute(
                api_tokens.update()
                .where(api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            ).rowcount
            self.audit.record(acting, "person.revoke_tokens", name, {"revoked": done}, conn=conn)
        return int(done)
