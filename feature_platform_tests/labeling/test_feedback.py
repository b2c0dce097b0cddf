"""Feedback from downstream systems: validated, quarantined, idempotent, weighted by trust,
optionally reviewed by people; through the core, the command line and the web API."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from feature_platform import FeatureStore, Settings
from feature_platform.catalog import digits
from feature_platform.cli import main
from feature_platform.governance.roles import PermissionDeniedError
from feature_platform.labeling.feedback import import_feedback, parse_events
from feature_platform.labeling.imports import quarantined
from feature_platform.labeling.label_sets import LabelChange
from feature_platform.labeling.queue import TaskSpec
from feature_platform_tests.conftest import register_people


def _pool_and_holdout(store: FeatureStore) -> tuple[list[str], str]:
    holdout = store.sources.read(digits.HOLDOUT_SOURCE)["sample_id"].astype(str)
    pool = sorted(
        set(store.sources.read(digits.SOURCE)["sample_id"].astype(str)) - set(holdout), key=int
    )
    return pool, str(holdout.iloc[0])


def test_feedback_is_checked_quarantined_and_idempotent(database_url: str, tmp_path: Path) -> None:
    digits_store = FeatureStore(
        dataclasses.replace(Settings.under(tmp_path / "fp"), database_url=database_url)
    )
    digits.bootstrap(digits_store)
    program = digits.program()
    pool, held_out = _pool_and_holdout(digits_store)
    a, b, c = pool[:3]
    events = [
        {"event_id": "e1", "sample_key": a, "label": "3", "predicted": "8"},
        {"event_id": "e2", "sample_key": b, "label": 5, "at": "2026-11-27T10:00:00Z"},
        {"event_id": "e3", "sample_key": "no-such", "label": "3"},
        {"event_id": "e4", "sample_key": held_out, "label": "3"},
        {"event_id": "e5", "sample_key": c, "label": "cat"},
        {"event_id": "e6", "sample_key": c, "label": float("nan")},
        {"event_id": "e7", "sample_key": c, "label": "3", "at": 1764237600},
        {"event_id": "e1", "sample_key": a, "label": "4"},  # same id, other content
        {"event_id": "e2", "sample_key": b, "label": "5"},  # the same event twice
    ]
    report = import_feedback(digits_store, program, parse_events(events), system="shop")
    assert report.accepted == ["e1", "e2"]
    assert report.duplicates == ["e2"]
    reasons = [r.reason for r in report.quarantined]
    assert reasons == [
        "event 'e3': unknown sample key 'no-such': no such sample in the program",
        f"event 'e4': sample '{held_out}' is held out: its true label judges the model, so "
        f"feedback on it is not used",
        "event 'e5': label 'cat' is not in the label set "
        "['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']",
        "event 'e6': no label given (missing, empty or NaN)",
        report.quarantined[4].reason,
        "event 'e1': event 'e1' is also line 1 of this batch with other content; one event "
        "id is one correction",
    ]
    assert "is a number, not an ISO-8601 time" in reasons[4]
    kept = quarantined(digits_store.engine, report.import_id)
    assert kept["line"].tolist() == [3, 4, 5, 6, 7, 8]

    stored = digits_store.machine_labels.labels(["feedback"])
    assert stored[["sample_key", "label", "source"]].values.tolist() == [
        [a, "3", "feedback:shop"],
        [b, "5", "feedback:shop"],
    ]
    assert stored["provenance"][0]["predicted"] == "8"
    assert digits_store.queue.answers().empty  # not a person's answer

    again = import_feedback(digits_store, program, parse_events(events[:2]), system="shop")
    assert (again.accepted, again.duplicates) == ([], ["e1", "e2"])
    conflict = import_feedback(
        digits_store,
        program,
        parse_events([{"event_id": "e1", "sample_key": a, "label": "9"}]),
        system="shop",
    )
    assert conflict.accepted == []
    assert conflict.quarantined[0].reason.startswith(
        "event 'e1' was already recorded with label '3'; refusing '9'"
    )
    assert len(digits_store.machine_labels.labels(["feedback"])) == 2


def test_trust_weighs_feedback_against_people(digits_store: FeatureStore) -> None:
    program = digits.program()
    key = _pool_and_holdout(digits_store)[0][0]
    register_people(digits_store.engine, "annotator", "ann")
    task = digits_store.queue.create_batch(
        "round-001", [TaskSpec(key, "random", 0.0, "test", "digits@v1")], digits.CLASSES
    )[0]
    digits_store.queue.submit(task.id, "ann", "3")
    event = [{"event_id": "e1", "sample_key": key, "label": "5"}]
    import_feedback(digits_store, program, parse_events(event), system="shop", trust=0.9)

    def label(sources: dict) -> str:
        return digits_store.labels.create_snapshot(sources=sources).labels["label"].iloc[0]

    assert label({"human": 1.0, "feedback": 0.8}) == "3"  # its trust 0.9 < one person
    assert label({"human": 1.0, "feedback:shop": 1.5}) == "5"  # the system named: its weight
    assert label({"human": 1.0}) == "3"  # not listed: not used
    snapshot = digits_store.labels.create_snapshot(sources=program.label_sources())
    assert snapshot.sources == {"human": 1.0, "feedback": 0.8}
    assert snapshot.source_votes == {"human": 1, "feedback": 1}


def test_review_tasks_ask_people_to_look_again(digits_store: FeatureStore) -> None:
    program = digits.program()
    a, b = _pool_and_holdout(digits_store)[0][:2]
    events = [
        {"event_id": "e1", "sample_key": a, "label": "3", "predicted": "8"},
        {"event_id": "e2", "sample_key": b, "label": "7"},
    ]
    report = import_feedback(
        digits_store, program, parse_events(events), system="shop", review=True
    )
    assert report.review_tasks == 2
    tasks = {t.sample_key: t for t in digits_store.queue.tasks(round_key="feedback-shop")}
    assert tasks[a].reason == "feedback from shop: user corrected 8 -> 3"
    assert tasks[b].reason == "feedback from shop: user corrected 7"
    assert len(tasks[a].context["features_shown"]) == 64
    again = import_feedback(digits_store, program, parse_events(events), system="shop", review=True)
    assert again.review_tasks == 0
    assert len(digits_store.queue.tasks(round_key="feedback-shop")) == 2
    # An event id re-sent with another label is refused: no review task for it either.
    c = _pool_and_holdout(digits_store)[0][2]
    conflicting = [{"event_id": "e1", "sample_key": c, "label": "9"}]
    refused = import_feedback(
        digits_store, program, parse_events(conflicting), system="shop", review=True
    )
    assert len(refused.quarantined) == 1 and refused.review_tasks == 0
    assert c not in {t.sample_key for t in digits_store.queue.tasks(round_key="feedback-shop")}


def test_feedback_follows_the_label_set_in_force(digits_store: FeatureStore) -> None:
    """After a rename, feedback takes the new name, refuses the old one, and its review tasks
    offer the classes in force."""
    program = digits.program()
    register_people(digits_store.engine, "lead", "lena")
    digits_store.label_sets.evolve(
        "digits", LabelChange.rename("7", "seven"), initial_classes=program.classes, actor="lena"
    )
    a, b = _pool_and_holdout(digits_store)[0][:2]
    events = [
        {"event_id": "e1", "sample_key": a, "label": "seven"},
        {"event_id": "e2", "sample_key": b, "label": "7"},
    ]
    report = import_feedback(
        digits_store, program, parse_events(events), system="shop", review=True
    )
    assert report.accepted == ["e1"]
    [refused] = report.quarantined
    assert "'7' is not in the label set" in refused.reason and "seven" in refused.reason
    [task] = digits_store.queue.tasks(round_key="feedback-shop")
    assert "seven" in task.classes and "7" not in task.classes
    assert task.label_set_version == 2


def test_only_people_who_may_import_send_feedback(digits_store: FeatureStore) -> None:
    register_people(digits_store.engine, "annotator", "ann")
    key = _pool_and_holdout(digits_store)[0][0]
    events = parse_events([{"event_id": "e1", "sample_key": key, "label": "3"}])
    with pytest.raises(PermissionDeniedError, match="'ann'"):
        import_feedback(digits_store, digits.program(), events, system="shop", actor="ann")
    assert digits_store.machine_labels.labels().empty


def test_labels_feedback_command(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("FP_HOME", str(tmp_path / "fp"))
    for name in ("FP_DATABASE_URL", "FP_OFFLINE_DIR", "MLFLOW_TRACKING_URI", "FP_PROGRAM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FP_USER", "lou")
    project = tmp_path / "project"
    (project / "programs").mkdir(parents=True)
    (project / "programs" / "digits.yaml").write_text(digits.TEMPLATE.read_text())
    assert main(["annotators", "add", "lou", "--role", "admin"]) == 0
    assert main(["programs", "publish", str(project)]) == 0
    from feature_platform.programs.project import open_program_store

    store = open_program_store(Settings.from_env(scoped=False), "digits")
    digits.bootstrap(store)
    pool, _ = _pool_and_holdout(store)
    store.engine.dispose()
    jsonl = tmp_path / "feedback.jsonl"
    lines = [
        {"event_id": "e1", "sample_key": pool[0], "label": "3", "predicted": "8"},
        {"event_id": "e2", "sample_key": "nope", "label": "3"},
    ]
    jsonl.write_text("\n".join(json.dumps(x) for x in lines) + "\n{not json\n")
    csv_file = tmp_path / "feedback.csv"
    csv_file.write_text(f"event_id,sample_key,label,predicted\ne9,{pool[1]},7,1\n")
    capsys.readouterr()

    argv = ["labels", "feedback", "--program", "digits", "--system", "shop", "--trust", "0.7"]
    assert main([*argv, str(jsonl), "--review"]) == 0
    out = capsys.readouterr().out
    assert "1 accepted, 0 already recorded, 2 quarantined, 1 review task(s) created" in out
    assert "line 2: event 'e2': unknown sample key 'nope'" in out
    assert "line 3: line 3 is not JSON" in out
    assert main([*argv, str(jsonl)]) == 0  # re-sent: recorded once
    assert "0 accepted, 1 already recorded" in capsys.readouterr().out
    assert main([*argv, str(csv_file)]) == 0
    assert "1 accepted" in capsys.readouterr().out
    monkeypatch.setenv("FP_USER", "cy")
    assert main(["annotators", "add", "cy", "--role", "annotator"]) != 0  # cy may not add
    capsys.readouterr()
    assert main([*argv, str(csv_file)]) != 0  # nobody in the program: refused
    assert "may not import" in capsys.readouterr().err
    store = open_program_store(Settings.from_env(scoped=False), "digits")
    stored = store.machine_labels.labels(["feedback"])
    assert stored["event_id"].tolist() == ["e1", "e9"]
    assert stored["confidence"].tolist() == [0.7, 0.7]
    store.engine.dispose()
    assert yaml  # the template is plain YAML (kept importable for editing in a test)
