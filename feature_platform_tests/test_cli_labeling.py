"""`feature-platform tasks export`, `labels import`, `queue status` and friends, run through
the CLI entry point against a store under FP_HOME."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from feature_platform import FeatureStore, Settings
from feature_platform.cli import main
from feature_platform.labeling.queue import TaskSpec
from feature_platform_tests.conftest import register_people

CLASSES = ["cat", "dog"]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for variable in ("FP_DATABASE_URL", "FP_OFFLINE_DIR", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("FP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FP_USER", "tester")  # the CLI acts as FP_USER: an admin here
    store = FeatureStore(Settings.from_env())
    register_people(store.engine, "admin", "tester")
    register_people(store.engine, "annotator", "bob")
    specs = [
        TaskSpec(
            f"s{i}",
            "margin",
            0.9 - i / 10,
            f"margin pick {i}",
            "pets@v1",
            "m7",
            {"whiskers": 1.0},
            [("cat", 0.55), ("dog", 0.45)],
        )
        for i in range(3)
    ]
    store.queue.create_batch("round-001", specs, CLASSES)
    return tmp_path


def test_export_import_and_status_through_the_cli(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["annotators", "add", "ann", "--label-studio-id", "1"]) == 0
    assert main(["annotators", "add", "rita", "--role", "reviewer"]) == 0
    out = home / "batch.json"
    assert (
        main(
            ["tasks", "export", "--round", "round-001", "--format", "label-studio", "-o", str(out)]
        )
        == 0
    )
    exported = json.loads(out.read_text())
    assert [t["data"]["sample_key"] for t in exported] == ["s0", "s1", "s2"]
    assert exported[0]["predictions"][0]["model_version"] == "m7"
    assert "image" not in exported[0]["data"]  # no pixel grid among the features

    jsonl_out = home / "batch.jsonl"
    assert (
        main(["tasks", "export", "--round", "round-001", "--format", "jsonl", "-o", str(jsonl_out)])
        == 0
    )
    tasks = [json.loads(line) for line in jsonl_out.read_text().splitlines()]
    answers = home / "answers.jsonl"
    answers.write_text(
        json.dumps({"task_id": tasks[0]["task_id"], "annotator": "ann", "label": "cat"})
        + "\n"
        + json.dumps({"task_id": tasks[1]["task_id"], "annotator": "ann", "label": "emu"})
        + "\n"
    )
    capsys.readouterr()
    assert main(["labels", "import", str(answers), "--format", "jsonl"]) == 0
    printed = capsys.readouterr().out
    assert "accepted 1, already recorded 0, rejected 1" in printed
    assert "line 2: Label 'emu'" in printed

    assert main(["labels", "import", str(answers), "--format", "jsonl"]) == 0  # a retry
    assert "accepted 0, already recorded 1, rejected 1" in capsys.readouterr().out

    only_bad = home / "bad.csv"
    only_bad.write_text("task_id,annotator,label\nnope,ann,cat\n")
    assert main(["labels", "import", str(only_bad), "--format", "csv"]) == 1
    printed = capsys.readouterr().out
    assert "accepted 0" in printed and "line 2: Unknown task id 'nope'" in printed
    assert "nothing could be taken" in printed

    assert main(["labels", "quarantine"]) == 0
    assert "line 2: Unknown task id 'nope'" in capsys.readouterr().out

    store = FeatureStore(Settings.from_env())
    store.queue.lease("bob", lease_seconds=600)
    assert main(["queue", "status"]) == 0
    printed = capsys.readouterr().out
    assert "all rounds: 3 tasks (pending 1, leased 1, answered 1, resolved 0)" in printed
    assert "oldest lease: task" in printed and "held by bob" in printed
    assert main(["queue", "status", "--round", "round-001", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["counts"]["answered"] == 1
    assert {row["annotator"]: row["answers"] for row in status["per_annotator"]} == {
        "ann": 1,
        "bob": 0,
    }
    assert status["oldest_lease"]["annotator"] == "bob"

    monkeypatch.setenv("FP_USER", "rita")  # the reviewer is whoever runs the command
    assert main(["labels", "adjudicate", tasks[0]["task_id"], "dog"]) == 0
    assert "(by rita)" in capsys.readouterr().out
    assert main(["labels", "snapshot", "--method", "dawid_skene"]) == 0
    assert "1 labels from 1 answers" in capsys.readouterr().out.splitlines()[-1]


def test_cli_errors_say_what_was_wrong(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["tasks", "export", "--round", "round-01", "--format", "jsonl", "-o", "-"]) == 2
    assert "No tasks in round 'round-01'. Did you mean 'round-001'?" in capsys.readouterr().err
    assert main(["labels", "import", str(home / "missing.json"), "--format", "label-studio"]) == 2
    assert "No such file" in capsys.readouterr().err
    binary = home / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert main(["labels", "import", str(binary), "--format", "label-studio"]) == 2
    assert "is not UTF-8 text" in capsys.readouterr().err
    garbage = home / "garbage.json"
    garbage.write_text("[{]")
    assert main(["labels", "import", str(garbage), "--format", "label-studio"]) == 2
    refused = capsys.readouterr().err  # a damaged export is refused whole
    assert "malformed JSON at line 1 column 3" in refused and "nothing was imported" in refused
    monkeypatch.setenv("FP_USER", "nobody")
    assert main(["labels", "adjudicate", "x", "cat"]) == 2
    assert "Unknown annotator 'nobody'" in capsys.readouterr().err
