"""One name rule for people, aliases and rounds, the same on SQLite and Postgres; untrusted text
is printed with its control characters escaped in every CLI listing."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from feature_platform import FeatureStore, Settings
from feature_platform.cli import main
from feature_platform.governance import system_actor
from feature_platform.governance.roles import people
from feature_platform.labeling.queue import TaskSpec
from feature_platform.names import InvalidNameError
from feature_platform.store.db import utcnow

HOSTILE = ["x\nfake: admin", "a" * 5000, "ann\n", "../../etc", "bell\x07", "esc\x1b[31m"]


@pytest.fixture
def fs(database_url: str, tmp_path: Path) -> FeatureStore:
    return FeatureStore(
        dataclasses.replace(Settings.under(tmp_path / "fp"), database_url=database_url)
    )


@pytest.mark.parametrize("name", HOSTILE, ids=repr)
def test_hostile_names_are_refused_the_same_way_on_both_databases(
    fs: FeatureStore, name: str
) -> None:
    spec = TaskSpec("s1", "margin", 0.5, "r", "items@v1")
    with pytest.raises(InvalidNameError, match="Invalid person name"):
        fs.registry.people.add(name, "annotator", actor=system_actor())
    with pytest.raises(InvalidNameError, match="Invalid round"):
        fs.queue.create_batch(name, [spec], ["a", "b"])
    with pytest.raises(InvalidNameError, match="Invalid alias"):
        fs.set_alias("items", name, "v1")
    assert fs.registry.people.find(name) is None
    assert fs.queue.tasks() == []


def test_cli_listings_escape_control_characters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for variable in ("FP_DATABASE_URL", "FP_OFFLINE_DIR", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("FP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FP_USER", "root")
    store = FeatureStore(Settings.from_env())
    store.registry.people.add("root", "admin", actor=system_actor())
    # A row written before names were checked (or behind the platform's back).
    with store.engine.begin() as conn:
        conn.execute(
            people.insert().values(
                name="x\nfake: admin", role="annotator", active=True, created_at=utcnow()
            )
        )
    assert main(["annotators", "add", "y\nfake: admin"]) == 2
    assert "\n" not in capsys.readouterr().err.rstrip("\n")
    assert main(["annotators", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert "fake: admin" not in [line.split(":")[0] for line in listed]
    assert any(line.startswith("x\\nfake: admin") for line in listed)

    hostile = tmp_path / "answers.jsonl"
    hostile.write_text(
        json.dumps({"task_id": "t\x1b[2J", "annotator": "root", "label": "\x1b[31m"})
    )
    capsys.readouterr()
    assert main(["labels", "import", str(hostile), "--format", "jsonl"]) == 1
    assert "\x1b" not in capsys.readouterr().out
    assert main(["labels", "quarantine"]) == 0
    shown = capsys.readouterr().out
    assert "\x1b" not in shown and "\\x1b[2J" in shown
