"""Retrieval tokens: which snapshot set a historical retrieval read, as a string another
process can hand back to read exactly the same data again.

A token records, for each `name@selector` the request named, the explicit version it
resolved to (aliases included), and for each version its definition fingerprint and the
names of the offline snapshot files read. Snapshots are append-only and named by their
content digest, so replaying those files gives identical results after newer snapshots were
written or aliases moved.

Form: `fprt1.<base64url(zlib(json))>.<sha256 of the json, 16 hex>`. The digest catches a
token that was truncated or edited; it is not a signature (a token grants no access: it can
only name snapshots the reader's store already holds).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from feature_platform.errors import InvalidRetrievalTokenError

PREFIX = "fprt1"
_SNAPSHOT = re.compile(r"snapshot-\d{8}T\d{12}-[0-9a-f]{8,64}\.parquet\Z")
_VERSION_ID = re.compile(r"[^@:\s]+@[^@:\s]+\Z")
_MAX_CHARS = 4 << 20  # a token is small; refuse to inflate anything absurd
_MAX_DOCUMENT_BYTES = 64 << 20  # what its data may inflate to


@dataclass(frozen=True)
class RetrievalToken:
    references: Mapping[str, str]  # "name@selector" as requested -> "name@version" read
    fingerprints: Mapping[str, str]  # "name@version" -> definition fingerprint
    snapshots: Mapping[str, Sequence[str]]  # "name@version" -> snapshot file names read

    def encode(self) -> str:
        document = json.dumps(
            {
                "references": dict(sorted(self.references.items())),
                "fingerprints": dict(sorted(self.fingerprints.items())),
                "snapshots": {k: list(v) for k, v in sorted(self.snapshots.items())},
            },
            separators=(",", ":"),
        ).encode()
        body = base64.urlsafe_b64encode(zlib.compress(document, 9)).rstrip(b"=").decode()
        return f"{PREFIX}.{body}.{_digest(document)}"

    @classmethod
    def decode(cls, token: object) -> RetrievalToken:
        """The token's content, or InvalidRetrievalTokenError saying what is wrong with it."""
        if not isinstance(token, str):
            raise InvalidRetrievalTokenError(
                f"A retrieval token is a string (result.attrs['retrieval_token']), not "
                f"{type(token).__name__}."
            )
        parts = token.strip().split(".")
        if len(parts) != 3 or not parts[1] or len(token) > _MAX_CHARS:
            raise InvalidRetrievalTokenError(
                f"Malformed retrieval token {token[:40]!r}...: expected "
                f"'{PREFIX}.<data>.<checksum>' as returned in result.attrs['retrieval_token']."
            )
        prefix, body, digest = parts
        if prefix != PREFIX:
            raise InvalidRetrievalTokenError(
                f"Unknown retrieval token format {prefix!r} (this version reads {PREFIX!r})."
            )
        try:
            inflate = zlib.decompressobj()
            # Bounded: a small token must not inflate into gigabytes.
            document = inflate.decompress(
                base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)), _MAX_DOCUMENT_BYTES
            )
        except (binascii.Error, ValueError, zlib.error) as exc:
            raise InvalidRetrievalTokenError(
                f"Malformed retrieval token: its data does not decode ({exc}); was it truncated?"
            ) from exc
        if inflate.unconsumed_tail:
            raise InvalidRetrievalTokenError(
                f"Retrieval token too large: its data inflates beyond {_MAX_DOCUMENT_BYTES} bytes."
            )
        if not inflate.eof:
            raise InvalidRetrievalTokenError(
                "Malformed retrieval token: its data does not decode (the compressed stream "
                "ends early); was it truncated?"
            )
        if _digest(document) != digest:
            raise InvalidRetrievalTokenError(
                "Retrieval token checksum mismatch: the token was altered or truncated."
            )
        try:
            content = json.loads(document)
            made = cls(
                references=dict(content["references"]),
                fingerprints=dict(content["fingerprints"]),
                snapshots={k: tuple(v) for k, v in content["snapshots"].items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidRetrievalTokenError(f"Malformed retrieval token content ({exc}).") from exc
        made._check()
        return made

    def _check(self) -> None:
        versions = set(self.fingerprints)
        for requested, version in self.references.items():
            if not (_is_text(requested) and _is_text(version) and _VERSION_ID.match(version)):
                raise InvalidRetrievalTokenError(
                    f"Malformed retrieval token: reference {requested!r} -> {version!r}."
                )
            if version not in versions:
                raise InvalidRetrievalTokenError(
                    f"Malformed retrieval token: {version} has no recorded fingerprint."
                )
        if set(self.snapshots) != versions:
            raise InvalidRetrievalTokenError(
                "Malformed retrieval token: its versions and snapshot lists do not match."
            )
        for version, names in self.snapshots.items():
            bad = [n for n in names if not (_is_text(n) and _SNAPSHOT.match(n))]
            if bad or not _is_text(self.fingerprints[version]):
                raise InvalidRetrievalTokenError(
                    f"Malformed retrieval token: {version} lists {bad[:1] or 'no'} snapshot "
                    f"names of the form 'snapshot-<time>-<digest>.parquet'."
                )


def _is_text(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _digest(document: bytes) -> str:
    return hashlib.sha256(document).hexdigest()[:16]
