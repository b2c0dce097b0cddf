"""The people registry (roles, external ids, who may register whom) and the append-only audit
log."""

from __future__ import annotations

import dataclasses
from pathlib import Path

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
