"""Identity and roles enforced in the core, on every write path, on SQLite and Postgres: each
role is refused what it may not do, and allowed what it may (one parametrized matrix)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from feature_platform import FeatureStore, Settings
from feature_platform.cli import main
from feature_platform.governance import (
    PermissionDeniedError,
    ReservedIdentityError,
    acting_as,
    configured_actor,
    current_actor,
    require,
    system_actor,
)
from feature_platform.governance.audit import AuditLog
from feature_platform.governance.roles import ROLES
from feature_platform.labeling.connectors.files import read_jsonl
from feature_platform.labeling.imports import import_answers
from feature_platform.labeling.queue import TaskSpec
from feature_platform.store.feature_set import FeatureSetSpec

CLASSES = ["cat", "dog"]


def _items(frame, params):  # noqa: ANN001, ANN202
    return frame.assign(y=frame["x"] * 2)[["item_id", "event_timestamp", "y"]]


def _spec(version: str) -> FeatureSetSpec:
    return FeatureSetSpec(
        name="items",
        version=version,
        entity="item_id",
        features={"y": "float64"},
        transform=_items,
        sources=("items_raw",),
    )


@pytest.fixture
def fs(database_url: str, tmp_path: Path) -> FeatureStore:
    store = FeatureStore(
        dataclasses.replace(Settings.under(tmp_path / "fp"), database_url=database_url)
    )
    people = store.registry.people
    for role in ROLES:
        people.add(f"the-{role}", role, actor=system_actor())
    people.add("the-former", "admin", actor=system_actor())
    people.deactivate("the-former", actor=system_actor())
    store.apply(_spec("v1"), actor=system_actor())
    store.apply(_spec("v2"), actor=system_actor())
    store.registry.register(_spec("v3"), actor=system_actor())  # a draft
    store.queue.create_batch(
        "r1", [TaskSpec(f"s{i}", "m", 0.5, "r", "items@v1") for i in range(8)], CLASSES
    )
    return store


def _task(fs: FeatureStore) -> str:
    return fs.queue.tasks(state="pending")[0].id


def _answered(fs: FeatureStore, who: str) -> str:
    task = _task(fs)
    fs.queue.submit(task, "the-annotator" if who != "the-annotator" else "the-reviewer", "cat")
    return task


# action -> (permission it needs, the call as `who`)
ACTIONS: dict[str, Callable[[FeatureStore, str], object]] = {
    "lease": lambda fs, who: fs.queue.lease(who),
    "submit": lambda fs, who: fs.queue.submit(_task(fs), who, "cat"),
    "skip": lambda fs, who: fs.queue.skip(_task(fs), who, "blurry"),
    "unsure": lambda fs, who: fs.queue.unsure(_task(fs), who),
    "adjudicate": lambda fs, who: fs.labels.adjudications.decide(_task(fs), "dog", who),
    "import": lambda fs, who: import_answers(
        fs.engine,
        fs.queue,
        read_jsonl(
            json.dumps({"task_id": _task(fs), "annotator": "the-annotator", "label": "cat"})
        ),
        source="x.jsonl",
        format="jsonl",
        actor=who,
    ),
    "register": lambda fs, who: fs.registry.register(_spec("v4"), actor=who),
    "publish": lambda fs, who: fs.publish("items", "v3", actor=who),
    "deprecate": lambda fs, who: fs.deprecate("items", "v2", actor=who),
    "alias": lambda fs, who: fs.set_alias("items", "serving", "v1", actor=who),
    "add_person": lambda fs, who: fs.registry.people.add("newcomer", "annotator", actor=who),
    "deactivate_person": lambda fs, who: fs.registry.people.deactivate("the-viewer", actor=who),
    "programs": lambda fs, who: require(who, "manage_programs", fs.engine),
}
LABELING = {"annotator", "reviewer", "lead", "admin"}
ALLOWED: dict[str, set[str]] = {
    "lease": LABELING,
    "submit": LABELING,
    "skip": LABELING,
    "unsure": LABELING,
    "adjudicate": {"reviewer", "lead", "admin"},
    "import": {"lead", "admin"},
    "register": {"lead", "admin"},
    "publish": {"lead", "admin"},
    "deprecate": {"lead", "admin"},
    "alias": {"lead", "admin"},
    "add_person": {"admin"},
    "deactivate_person": {"admin"},
    "programs": {"lead", "admin"},
}
WHO = [*ROLES, "former", "stranger"]


def _state(fs: FeatureStore) -> tuple:
    """Everything a refused action must leave unchanged."""
    return (
        len(AuditLog(fs.engine).entries()),
        len(fs.queue.answers(history=True)),
        len(fs.queue.passes()),
        len(fs.queue.leases()),
        len(fs.labels.adjudications.all()),
        [(v.version, v.status) for v in fs.registry.list_versions("items")],
        fs.registry.aliases("items"),
        [(p.name, p.role, p.active) for p in fs.registry.people.list()],
    )


@pytest.mark.parametrize("who", WHO)
def test_each_role_may_do_only_what_it_is_allowed(fs: FeatureStore, who: str) -> None:
    name = "stranger" if who == "stranger" else f"the-{who}"
    outcome: dict[str, str] = {}
    for action in sorted(ACTIONS):
        before = _state(fs)
        try:
            ACTIONS[action](fs, name)
        except PermissionDeniedError as refused:
            message = str(refused)
            if who == "stranger":
                assert "not registered" in message or "not a registered" in message, message
            elif who == "former":
                assert "deactivated" in message, message
            else:
                assert f"'{who}'" in message, message  # says which role was refused
            assert _state(fs) == before, f"{action} by {who} was refused but wrote something"
            outcome[action] = "refused"
        else:
            outcome[action] = "allowed"
    expected = {a: "allowed" if who in ALLOWED[a] else "refused" for a in ACTIONS}
    assert outcome == expected


def test_lifecycle_changes_are_audited_with_who_and_how(fs: FeatureStore) -> None:
    with acting_as("the-lead", via="session"):
        fs.publish("items", "v3")
        fs.set_alias("items", "serving", "v3")
    audit = AuditLog(fs.engine).entries(actor="the-lead")
    assert audit[["action", "target"]].values.tolist() == [
        ["feature_set.status", "items@v3"],
        ["feature_set.alias", "items@serving"],
    ]
    assert {d["via"] for d in audit["detail"]} == {"session"}
    platform = AuditLog(fs.engine).entries(actor="platform")
    assert platform.loc[0, "action"] == "person.bootstrap"  # the system identity, audited


def test_the_command_line_acts_as_fp_user_or_the_os_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FP_USER", "alice")
    assert (configured_actor().name, configured_actor().via) == ("alice", "FP_USER")
    monkeypatch.delenv("FP_USER")
    assert configured_actor().via == "os-user"
    monkeypatch.setenv("FP_USER", "platform")
    with pytest.raises(ReservedIdentityError, match="platform's own identity"):
        configured_actor()
    with acting_as("bob") as bob:
        assert current_actor() == bob


def test_cli_identity_cannot_be_chosen_by_a_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for variable in ("FP_DATABASE_URL", "FP_OFFLINE_DIR", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("FP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FP_USER", "mallory")
    # A fresh platform: nobody may register others, only themselves as its first admin.
    assert main(["annotators", "add", "root", "--role", "admin"]) == 2
    assert "'mallory' (via FP_USER) may not manage people" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["annotators", "add", "x", "--role", "admin", "--actor", "root"])
    capsys.readouterr()
    assert main(["annotators", "add", "mallory", "--role", "admin"]) == 0  # bootstrap
    monkeypatch.setenv("FP_USER", "eve")
    assert main(["annotators", "add", "eve", "--role", "admin"]) == 2  # an admin exists now
    monkeypatch.setenv("FP_USER", "mallory")
    assert main(["annotators", "add", "eve", "--role", "annotator"]) == 0
    assert main(["annotators", "whoami"]) == 0
    assert "mallory (via FP_USER): admin" in capsys.readouterr().out
    monkeypatch.setenv("FP_USER", "platform")
    assert main(["annotators", "add", "z"]) == 2
    assert "platform's own identity" in capsys.readouterr().err
    store = FeatureStore(Settings.from_env())
    audit = AuditLog(store.engine).entries()
    assert audit[["actor", "action", "target"]].values.tolist() == [
        ["mallory", "person.bootstrap", "mallory"],
        ["mallory", "person.add", "eve"],
    ]
