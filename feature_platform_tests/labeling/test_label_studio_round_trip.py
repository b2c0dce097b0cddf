"""Export a batch as Label Studio import JSON and take Label Studio's JSON export back, using
the shapes a real Label Studio 1.23.2 server produced (copied into fixtures/label_studio)."""

from __future__ import annotations

import base64
import copy
import csv
import io
import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pandas as pd
import pytest
from sklearn.datasets import load_digits

from feature_platform import FeatureStore, Settings
from feature_platform.cli import main
from feature_platform.errors import FeaturePlatformError
from feature_platform.governance.roles import AnnotatorRegistry
from feature_platform.labeling.connectors import label_studio
from feature_platform.labeling.imports import answer_sources, import_answers, quarantined
from feature_platform.labeling.queue import TaskSpec

REFERENCE = Path(__file__).parent / "fixtures" / "label_studio"
DIGITS = [str(c) for c in range(10)]


def reference(name: str) -> Any:
    return json.loads((REFERENCE / f"label-studio-1.23.2-{name}.json").read_text())


@pytest.fixture
def fs(tmp_path: Path) -> FeatureStore:
    store = FeatureStore(Settings.under(tmp_path / "fp"))
    registry = AnnotatorRegistry(store.engine)
    registry.add("ann", "annotator", {"label-studio": "1"})
    registry.add("bob", "annotator", {"label-studio": "2"})
    registry.add("lead", "admin")  # the command line acts as FP_USER=lead
    images = load_digits().data[:3] / 16.0
    specs = [
        TaskSpec(
            sample_key=str(i),
            strategy="margin",
            score=0.8 - i / 10,
            reason=f"margin: the model hesitates on sample {i}",
            feature_version="digits@v1",
            model_version="models:/digits/3",
            features_shown={f"p{j}": float(v) for j, v in enumerate(images[i])},
            top_classes=[("3", 0.41), ("8", 0.39), ("5", 0.1)],
        )
        for i in range(3)
    ]
    store.queue.create_batch("round-001", specs, DIGITS, answers_needed=2)
    return store


def label_studio_export(exported: list[dict], answers: list[list[dict]]) -> str:
    """What Label Studio's JSON export returns after annotation: built from the reference
    export's task and annotation objects, with our imported task data and `answers[i]` as
    the i-th task's annotations (keys: user, choice, created_at, lead_time, cancelled)."""
    ref = reference("export")
    task_template = ref[1]  # a task with one completed annotation
    done_template = ref[1]["annotations"][0]
    cancelled_template = ref[0]["annotations"][0]
    tasks = []
    for i, (source, wanted) in enumerate(zip(exported, answers, strict=True)):
        task = copy.deepcopy(task_template)
        task.update(id=100 + i, inner_id=i + 1, data=source["data"], meta=source["meta"])
        task["predictions"] = [500 + i] if source.get("predictions") else []
        task["annotations"] = []
        for j, spec in enumerate(wanted):
            template = cancelled_template if spec.get("cancelled") else done_template
            annotation = copy.deepcopy(template)
            annotation.update(
                id=1000 + 10 * i + j,
                task=100 + i,
                completed_by=spec["user"],
                created_at=spec["created_at"],
                updated_at=spec["created_at"],
                unique_id=f"uid-{i}-{j}",
            )
            if not spec.get("cancelled"):
                annotation["lead_time"] = spec["lead_time"]
                annotation["result"][0]["value"]["choices"] = [spec["choice"]]
            task["annotations"].append(annotation)
        task["total_annotations"] = sum(not a.get("cancelled") for a in wanted)
        task["cancelled_annotations"] = sum(bool(a.get("cancelled")) for a in wanted)
        tasks.append(task)
    return json.dumps(tasks, indent=2)


def test_export_has_label_studio_import_shape_with_context(fs: FeatureStore) -> None:
    tasks = fs.queue.tasks("round-001")
    exported = label_studio.export_tasks(tasks)
    ref_task = reference("import")[0]
    ref_prediction = ref_task["predictions"][0]
    for task, item in zip(tasks, exported, strict=True):
        assert set(item) == {"data", "predictions", "meta"}
        prediction = item["predictions"][0]
        assert set(ref_prediction) <= set(prediction)
        assert set(prediction["result"][0]) == set(ref_prediction["result"][0])
        assert prediction["result"][0]["value"] == {"choices": ["3"]}
        # Label Studio shows a prediction's score as the model's confidence: the probability
        # of the predicted class; the selection score stays in meta.
        assert (prediction["model_version"], prediction["score"]) == (task.model_version, 0.41)
        assert item["meta"]["score"] == task.score
        assert item["data"]["task_id"] == task.id and item["data"]["sample_key"] == task.sample_key
        assert item["meta"]["reason"] == task.reason
        assert item["meta"]["top_classes"] == [["3", 0.41], ["8", 0.39], ["5", 0.1]]
        assert item["meta"]["feature_version"] == "digits@v1"
        header, encoded = item["data"]["image"].split(",", 1)
        assert header == "data:image/png;base64"
        png = base64.b64decode(encoded)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert int.from_bytes(png[16:20], "big") == 64  # 8x8 pixels, zoomed 8 times
    json.dumps(exported)  # serialisable as is


def test_round_trip_takes_answers_and_rejects_cancelled(fs: FeatureStore) -> None:
    tasks = fs.queue.tasks("round-001")
    exported = label_studio.export_tasks(tasks)
    t0 = "2026-11-25T19:32:26.101330Z"
    text = label_studio_export(
        exported,
        [
            [
                {"user": 1, "choice": "3", "created_at": t0, "lead_time": 3.5},
                {"user": 2, "choice": "8", "created_at": t0, "lead_time": 4.0},
            ],
            [
                {"user": 1, "cancelled": True, "created_at": t0},
                {"user": 2, "choice": "5", "created_at": t0, "lead_time": 2.25},
            ],
            [{"user": 1, "choice": "0", "created_at": t0, "lead_time": 9.0}],
        ],
    )
    rows = label_studio.read_export(text)
    report = import_answers(fs.engine, fs.queue, rows, source="ls.json", format="label-studio")
    assert (report.accepted, report.already_recorded) == (4, 0)
    [cancelled] = report.rejected
    assert "cancelled" in cancelled.reason
    assert "Label Studio task 101, annotation 1 (id 1010)" in cancelled.reason
    assert text.splitlines()[cancelled.line - 1].strip() == "{"  # the task's first line

    answers = fs.queue.answers().sort_values(["sample_key", "annotator"])
    assert answers[["sample_key", "annotator", "label", "time_spent_s"]].values.tolist() == [
        ["0", "ann", "3", 3.5],
        ["0", "bob", "8", 4.0],
        ["1", "bob", "5", 2.25],
        ["2", "ann", "0", 9.0],
    ]
    assert (answers["answered_at"] == pd.Timestamp(t0)).all()
    assert set(answers["submission_id"]) == {
        "label-studio:uid-0-0",
        "label-studio:uid-0-1",
        "label-studio:uid-1-1",
        "label-studio:uid-2-0",
    }
    assert (answers["model_version"] == "models:/digits/3").all()  # provenance kept
    assert fs.queue.counts("round-001")["answered"] == 1
    assert quarantined(fs.engine)["import_id"].tolist() == [report.import_id]

    again = import_answers(
        fs.engine, fs.queue, label_studio.read_export(text), source="ls.json", format="label-studio"
    )
    assert (again.accepted, again.already_recorded, len(again.rejected)) == (0, 4, 1)
    assert len(fs.queue.answers()) == 4


def test_the_reference_export_itself_is_rejected_row_by_row(fs: FeatureStore) -> None:
    text = (REFERENCE / "label-studio-1.23.2-export.json").read_text()
    rows = label_studio.read_export(text)
    report = import_answers(fs.engine, fs.queue, rows, source="ref", format="label-studio")
    assert report.taken == 0
    reasons = [r.reason for r in report.rejected]
    assert len(reasons) == 3
    assert "cancelled" in reasons[0]  # task 3's annotation was cancelled
    assert all("no task_id" in r for r in reasons[1:])  # not exported by us
    assert fs.queue.answers().empty


def test_a_truncated_export_imports_nothing(fs: FeatureStore) -> None:
    tasks = fs.queue.tasks("round-001")
    t0 = "2026-11-25T19:32:26Z"
    text = label_studio_export(
        label_studio.export_tasks(tasks),
        [[{"user": 1, "choice": "3", "created_at": t0, "lead_time": 1.0}]] * 3,
    )
    broken = text[: text.rindex('"lead_time"')]  # cut inside the last task
    with pytest.raises(FeaturePlatformError, match="truncated or damaged") as refused:
        label_studio.read_export(broken)
    assert "nothing was imported" in str(refused.value)
    with pytest.raises(FeaturePlatformError, match="expected a JSON array"):
        label_studio.read_export("{}")
    assert fs.queue.answers().empty


def min_records(text: str) -> list[dict]:
    """What Label Studio's JSON-MIN export holds for the same annotations (its converter
    flattens each non-cancelled annotation: the task's data, `id` = the Label Studio task,
    the choice under the <Choices> name, annotator, annotation_id, times)."""
    records = []
    for task in json.loads(text):
        for annotation in task["annotations"]:
            if annotation["was_cancelled"]:
                continue
            record = dict(task["data"])
            record.update(
                id=task["id"],
                label=annotation["result"][0]["value"]["choices"][0],
                annotator=annotation["completed_by"],
                annotation_id=annotation["id"],
                created_at=annotation["created_at"],
                updated_at=annotation["updated_at"],
                lead_time=annotation["lead_time"],
            )
            records.append(record)
    return records


ANSWERS = [
    [
        {"user": 1, "choice": "3", "created_at": "2026-11-25T19:32:26Z", "lead_time": 3.5},
        {"user": 2, "choice": "8", "created_at": "2026-11-25T19:33:00Z", "lead_time": 4.0},
    ],
    [{"user": 1, "cancelled": True, "created_at": "2026-11-25T19:32:26Z"}],
    [{"user": 2, "choice": "0", "created_at": "2026-11-25T19:34:00Z", "lead_time": 9.0}],
]


def test_json_min_export_is_imported(fs: FeatureStore) -> None:
    full = label_studio_export(label_studio.export_tasks(fs.queue.tasks("round-001")), ANSWERS)
    text = json.dumps(min_records(full))
    report = import_answers(
        fs.engine, fs.queue, label_studio.read_export(text), source="m", format="label-studio"
    )
    assert (report.accepted, len(report.rejected)) == (3, 0)
    answers = fs.queue.answers().sort_values(["sample_key", "annotator"])
    assert answers[["sample_key", "annotator", "label", "time_spent_s"]].values.tolist() == [
        ["0", "ann", "3", 3.5],
        ["0", "bob", "8", 4.0],
        ["2", "bob", "0", 9.0],
    ]
    assert answers["answered_at"].min() == pd.Timestamp("2026-11-25T19:32:26Z")
    # Neither a JSON nor a JSON-MIN export: refused whole, with the reason.
    with pytest.raises(FeaturePlatformError, match="not a Label Studio export"):
        label_studio.read_export(json.dumps([{"hello": 1}]))


def test_label_studio_csv_export_is_imported_with_times(fs: FeatureStore) -> None:
    full = label_studio_export(label_studio.export_tasks(fs.queue.tasks("round-001")), ANSWERS)
    records = min_records(full)
    records.append(dict(records[0], annotator=9, annotation_id=1999))  # nobody linked to 9
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(records[0]))
    writer.writeheader()
    for record in records:  # nested data (the features) is written as JSON text
        writer.writerow({k: json.dumps(v) if isinstance(v, dict) else v for k, v in record.items()})
    rows = label_studio.read_export(buffer.getvalue())
    report = import_answers(fs.engine, fs.queue, rows, source="c.csv", format="label-studio")
    assert (report.accepted, len(report.rejected)) == (3, 1)
    # The hint links the Label Studio id to a person; it does not register "9" as a name.
    assert "annotators add NAME --label-studio-id 9" in report.rejected[0].reason
    answers = fs.queue.answers().sort_values(["sample_key", "annotator"])
    assert answers["annotator"].tolist() == ["ann", "bob", "bob"]  # Label Studio ids resolved
    assert answers["time_spent_s"].tolist() == [3.5, 4.0, 9.0]
    assert answers["answered_at"].tolist() == [
        pd.Timestamp("2026-11-25T19:32:26Z"),
        pd.Timestamp("2026-11-25T19:33:00Z"),
        pd.Timestamp("2026-11-25T19:34:00Z"),
    ]
    with pytest.raises(FeaturePlatformError, match="not a Label Studio export"):
        label_studio.read_export("a,b\n1,2\n")


def test_reimport_does_not_quarantine_the_same_rows_again(fs: FeatureStore) -> None:
    text = label_studio_export(label_studio.export_tasks(fs.queue.tasks("round-001")), ANSWERS)
    first = import_answers(
        fs.engine, fs.queue, label_studio.read_export(text), source="a", format="label-studio"
    )
    again = import_answers(
        fs.engine, fs.queue, label_studio.read_export(text), source="a", format="label-studio"
    )
    assert len(first.rejected) == len(again.rejected) == 1  # the cancelled annotation
    assert again.requarantined == 1
    assert len(quarantined(fs.engine)) == 1


def test_label_studio_ids_are_kept_in_provenance(fs: FeatureStore) -> None:
    text = label_studio_export(label_studio.export_tasks(fs.queue.tasks("round-001")), ANSWERS)
    report = import_answers(
        fs.engine, fs.queue, label_studio.read_export(text), source="a", format="label-studio"
    )
    sources = answer_sources(fs.engine).sort_values("external_annotation")
    answers = fs.queue.answers().set_index("submission_id")
    columns = ["system", "external_task", "external_annotation", "external_user"]
    assert sources[columns].values.tolist() == [
        ["label-studio", "100", "1000", "1"],
        ["label-studio", "100", "1001", "2"],
        ["label-studio", "102", "1020", "2"],
    ]
    assert set(sources["import_id"]) == {report.import_id}
    for row in sources.itertuples():
        assert answers.loc[row.submission_id, "answer_id"] == row.answer_id


def use_home(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("FP_HOME", str(home))
    monkeypatch.setenv("FP_USER", "lead")  # the command line acts as FP_USER
    for variable in ("FP_DATABASE_URL", "FP_OFFLINE_DIR", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(variable, raising=False)


def test_rejections_name_the_task_and_annotation_not_line_1(
    fs: FeatureStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = label_studio_export(label_studio.export_tasks(fs.queue.tasks("round-001")), ANSWERS)
    one_line = tmp_path / "one-line.json"
    one_line.write_text(json.dumps(json.loads(text)))  # Label Studio writes a single line
    use_home(monkeypatch, tmp_path / "fp")
    assert main(["labels", "import", str(one_line), "--format", "label-studio"]) == 0
    out = capsys.readouterr().out
    assert "  Label Studio task 101, annotation 1 (id 1010): annotation was cancelled" in out
    assert "line 1" not in out


def test_export_ships_the_labeling_config_it_matches(
    fs: FeatureStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_home(monkeypatch, tmp_path / "fp")
    out = tmp_path / "batch.json"
    assert main(["tasks", "export", "--round", "round-001", "-o", str(out)]) == 0
    config = ElementTree.fromstring((tmp_path / "batch.config.xml").read_text())
    exported = json.loads(out.read_text())
    names = {e.get("name"): e for e in config.iter() if e.get("name")}
    choices = names["label"]
    assert choices.tag == "Choices" and choices.get("choice") == "single"
    assert [c.get("value") for c in choices] == DIGITS
    assert names[choices.get("toName")].tag == "Image"
    assert names["image"].get("value") == "$image"
    for task in exported:  # every prediction's names exist in the config
        result = task["predictions"][0]["result"][0]
        assert result["from_name"] in names and result["to_name"] in names
    plain_out, config_out = tmp_path / "plain.json", tmp_path / "elsewhere.xml"
    argv = ["tasks", "export", "--round", "round-001", "-o", str(plain_out), "--no-image"]
    assert main([*argv, "--config", str(config_out)]) == 0
    plain = ElementTree.fromstring(config_out.read_text())
    target = {e.get("name"): e for e in plain.iter() if e.get("name")}
    assert target[target["label"].get("toName")].tag == "Text"
    for task in json.loads(plain_out.read_text()):
        assert "image" not in task["data"]
        result = task["predictions"][0]["result"][0]
        assert result["from_name"] in target and result["to_name"] in target


def test_an_answer_corrected_in_label_studio_comes_back_as_a_revision(fs: FeatureStore) -> None:
    exported = label_studio.export_tasks(fs.queue.tasks("round-001"))
    first = label_studio_export(exported, ANSWERS)
    import_answers(
        fs.engine, fs.queue, label_studio.read_export(first), source="a", format="label-studio"
    )
    corrected = json.loads(first)
    annotation = corrected[0]["annotations"][1]  # bob's answer to sample 0: 8 -> 5
    annotation["result"][0]["value"]["choices"] = ["5"]
    annotation["updated_at"] = "2026-11-25T20:00:00Z"
    report = import_answers(
        fs.engine,
        fs.queue,
        label_studio.read_export(json.dumps(corrected)),
        source="a",
        format="label-studio",
    )
    assert (report.accepted, report.revised, report.already_recorded) == (1, 1, 2)
    assert [r.reason for r in report.rejected if "conflict" in r.reason] == []
    task_id = fs.queue.find("round-001", "0").id
    history = fs.queue.answer_history(task_id, "bob")
    assert [(a.label, a.revision) for a in history] == [("8", 1), ("5", 2)]
    assert history[1].revises == history[0].id
    effective = fs.queue.answers().set_index(["sample_key", "annotator"])
    assert effective.loc[("0", "bob"), "label"] == "5"
    # The revision keeps its Label Studio provenance too.
    sources = answer_sources(fs.engine)
    assert sources.loc[sources["answer_id"] == history[1].id, "external_annotation"].tolist() == [
        "1001"
    ]
    # Replaying the old export does not flip the answer back.
    replay = import_answers(
        fs.engine, fs.queue, label_studio.read_export(first), source="a", format="label-studio"
    )
    assert (replay.accepted, replay.revised) == (0, 0)
    assert (
        fs.queue.answers().set_index(["sample_key", "annotator"]).loc[("0", "bob"), "label"] == "5"
    )
