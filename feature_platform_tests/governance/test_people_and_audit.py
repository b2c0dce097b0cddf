"""The people registry (roles, external ids, who may register whom) and the append-only audit
log."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from feature_platform import FeatureStore, Settings
from feature_platform.errors import FeaturePlatformError
from feature_platform.governance import acting_as
from feature_platform.governance.audit import AuditLog
from feature_platform.governance.roles import (
    AnnotatorRegistry,
    PermissionDeniedError,
    UnknownAnnotatorError,
)


@pytest.fixture
def registry(database_url: str, tmp_path: Path) -> AnnotatorRegistry:
    settings = dataclasses.replace(Settings.under(tmp_path / "fp"), database_url=database_url)
    return AnnotatorRegistry(FeatureStore(settings).engine)


def test_people_have_roles_and_external_ids(registry: AnnotatorRegistry) -> None:
    with acting_as("root", via="FP_USER"):
        registry.add("root", "admin")  # the first admin registers themselves
        registry.add("ann", "annotator", {"label-studio": "7"})
        registry.add("rita", "reviewer")
        assert registry.resolve("label-studio", 7).name == "ann"
        assert registry.resolve("label-studio", "8") is None
        assert registry.require("ann", "label").role == "annotator"
        assert registry.require("rita", "adjudicate").name == "rita"
        with pytest.raises(
            PermissionDeniedError, match="'ann' may not adjudicate: their role is 'annotator'"
        ):
            registry.require("ann", "adjudicate")
        with pytest.raises(UnknownAnnotatorError, match="Unknown annotator 'anne'.*'ann'"):
            registry.get("anne")
        with pytest.raises(FeaturePlatformError, match="already belongs to 'ann'"):
            registry.add("bob", "annotator", {"label-studio": "7"})
        assert registry.find("bob") is None  # the failed add left nothing behind
        with pytest.raises(FeaturePlatformError, match="Unknown role 'reviwer'.*'reviewer'"):
            registry.add("bob", "reviwer")

        registry.add("ann", "annotator", {"label-studio": "7"})  # idempotent: no audit entry
        registry.deactivate("ann")
        with pytest.raises(PermissionDeniedError, match="deactivated"):
            registry.require("ann", "label")
        assert [p.name for p in registry.list()] == ["ann", "rita", "root"]

    audit = AuditLog(registry.engine).entries()
    assert audit[["actor", "action", "target"]].values.tolist() == [
        ["root", "person.bootstrap", "root"],
        ["root", "person.add", "ann"],
        ["root", "person.add", "rita"],
        ["root", "person.deactivate", "ann"],
    ]
    assert audit.loc[1, "detail"] == {
        "identities": {"label-studio": "7"},
        "role": "annotator",
        "via": "FP_USER",
    }


def test_audit_filters_and_limit_are_answered_by_the_database(
    registry: AnnotatorRegistry,
) -> None:
    audit = AuditLog(registry.engine)
    start = datetime(2026, 3, 1, 12, tzinfo=UTC)
    entries = [  # (minutes after start, actor, action, target), mixed
        (i, ["ann", "bob", "cid"][i % 3], ["label.answer", "label.revise"][i % 2], f"t{i % 4}")
        for i in range(30)
    ]
    for minutes, actor, action, target in entries:
        audit.record(actor, action, target, {"n": minutes}, now=start + timedelta(minutes=minutes))
    everything = audit.entries()
    theirs = everything[everything["actor"].isin(["ann", "bob", "cid"])]
    assert [d["n"] for d in theirs["detail"]] == list(range(30))  # oldest first

    def same(frame: pd.DataFrame, expected: pd.DataFrame) -> None:
        assert frame["id"].tolist() == expected["id"].tolist()
        assert frame["detail"].tolist() == expected["detail"].tolist()

    same(audit.entries(actor="bob"), theirs[theirs["actor"] == "bob"])
    same(
        audit.entries(actor="ann", action="label.revise", target="t3"),
        theirs[
            (theirs["actor"] == "ann")
            & (theirs["action"] == "label.revise")
            & (theirs["target"] == "t3")
        ],
    )
    since, until = start + timedelta(minutes=10), start + timedelta(minutes=20)
    window = theirs[(theirs["at"] >= since) & (theirs["at"] < until)]
    assert len(window) == 10
    same(audit.entries(since=since, until=until), window)
    # A time in another zone is the same instant.
    same(audit.entries(since=since.astimezone(timezone(timedelta(hours=-5))), until=until), window)
    # A limit keeps the newest N (still oldest first): what `entries().tail(N)` gave.
    same(audit.entries(limit=5), everything.tail(5))
    same(
        audit.entries(action="label.answer", limit=3),
        theirs[theirs["action"] == "label.answer"].tail(3),
    )
    assert [d["n"] for d in audit.entries(actor="cid", until=until, limit=2)["detail"]] == [14, 17]
    assert audit.entries(actor="nobody", limit=5).empty
