"""Privacy of what annotators and exports see: tagged columns are redacted per role and per the
program's policy, every unredacted view is audited, exports and renderers refuse a task that
skipped redaction, and lineage / model tags say which tagged columns a model learned from."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest

from feature_platform import FeatureStore, Settings
from feature_platform.catalog import digits
from feature_platform.cli import main
from feature_platform.governance.identity import SYSTEM, system_actor
from feature_platform.governance.privacy import (
    DEFAULT_POLICY,
    PrivacyError,
    ensure_redacted,
    feature_subject,
    source_subject,
)
from feature_platform.labeling.connectors import files, label_studio
from feature_platform.labeling.queue import TaskSpec
from feature_platform.labeling.simulated import SimulatedAnnotators
from feature_platform.learning import rounds
from feature_platform.learning.loop import MemoryTracker, run_loop
from feature_platform.programs.project import open_program_store
from feature_platform.programs.template import ProgramTemplate
from feature_platform.store.feature_set import FeatureSetSpec
from feature_platform.web import render

ROLES = ("viewer", "annotator", "reviewer", "lead", "admin")
TAGS = {"email": ("pii",), "income": ("sensitive",), "zip": ("location",), "age": ()}
VALUES = {"email": 1.5, "income": 2.5, "zip": 3.5, "age": 40.0}


def _identity(frame: pd.DataFrame, params) -> pd.DataFrame:  # noqa: ANN001
    return frame


SPEC = FeatureSetSpec(
    name="people",
    version="v1",
    entity="person_id",
    features=dict.fromkeys(VALUES, "float64"),
    transform=_identity,
    sources=("people_raw",),
    tags={k: v for k, v in TAGS.items() if v},
)


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    fs = FeatureStore(Settings.under(tmp_path / "fp"), actor=system_actor())
    fs.apply(SPEC)
    for role in ROLES:
        fs.registry.people.add(f"{role}1", role, actor=SYSTEM)
    return fs


def _batch(fs: FeatureStore, *, with_tags: bool = True, keys=("a", "b")) -> list:  # noqa: ANN001
    specs = [
        TaskSpec(
            key,
            "margin",
            0.5,
            "margin pick",
            SPEC.id,
            None,
            dict(VALUES),
            [("yes", 0.6), ("no", 0.4)],
            features_shown_version=SPEC.id if with_tags else None,
            column_tags={c: list(t) for c, t in SPEC.tags.items()} if with_tags else {},
        )
        for key in keys
    ]
    return fs.queue.create_batch("round-001", specs, ["yes", "no"])


# Who sees which tag under the default policy (pii: lead+, sensitive: reviewer+, any other
# tag: lead+).
EXPECTED_VISIBLE = {
    "viewer": set(),
    "annotator": set(),
    "reviewer": {"income"},
    "lead": {"email", "income", "zip"},
    "admin": {"email", "income", "zip"},
}


@pytest.mark.parametrize("role", ROLES)
def test_each_role_sees_only_the_tags_its_role_allows_and_markers_for_the_rest(
    store: FeatureStore, role: str
) -> None:
    tasks = _batch(store)
    seen = store.privacy.redact_tasks(tasks, f"{role}1", purpose="test:view")
    for task in seen:
        shown = task.context["features_shown"]
        assert shown["age"] == 40.0  # untagged: always shown
        for column in ("email", "income", "zip"):
            if column in EXPECTED_VISIBLE[role]:
                assert shown[column] == VALUES[column]
            else:  # never dropped: a marker naming the tag that withholds it
                assert shown[column] == f"[redacted: {TAGS[column][0]}]"
        assert task.context["privacy"]["viewer"] == f"{role}1"
        assert (
            set(task.context["privacy"]["redacted"])
            == {"email", "income", "zip"} - (EXPECTED_VISIBLE[role])
        )
    # The stored tasks are untouched: redaction is a view.
    assert store.queue.get(tasks[0].id).context["features_shown"] == VALUES
    views = store.registry.people.audit.entries(action="privacy.view")
    if not EXPECTED_VISIBLE[role]:
        assert views.empty  # nothing tagged was shown: nothing to audit
        return
    assert sorted(views["target"]) == sorted(f"task:{t.id}" for t in tasks)
    for entry in views.itertuples():
        assert entry.actor == f"{role}1"
        assert set(entry.detail["columns"]) == EXPECTED_VISIBLE[role]
        assert entry.detail["tags"] == sorted({TAGS[c][0] for c in EXPECTED_VISIBLE[role]})
        assert entry.detail["purpose"] == "test:view"


def test_the_program_policy_overrides_the_defaults_and_is_audited(store: FeatureStore) -> None:
    assert store.privacy.policy() == DEFAULT_POLICY
    with pytest.raises(PrivacyError, match="unknown role 'boss'"):
        store.privacy.set_policy({"pii": "boss"}, actor=SYSTEM)
    with pytest.raises(Exception, match="may not manage_programs"):
        store.privacy.set_policy({"pii": "annotator"}, actor="reviewer1")
    assert store.privacy.set_policy({"pii": "annotator", "location": "engineer"}, actor=SYSTEM)
    assert not store.privacy.set_policy({"pii": "annotator", "location": "lead"}, actor=SYSTEM)
    [task] = store.privacy.redact_tasks(_batch(store, keys=("a",)), "annotator1", purpose="t")
    shown = task.context["features_shown"]
    assert shown["email"] == 1.5  # pii now open to annotators in this program
    assert shown["income"] == "[redacted: sensitive]"  # the default still holds
    assert shown["zip"] == "[redacted: location]"
    [change] = store.registry.people.audit.entries(action="privacy.policy").itertuples()
    assert change.detail["after"] == {
        "pii": "annotator",
        "sensitive": "reviewer",
        "location": "lead",
    }


def test_unregistered_and_deactivated_people_see_no_tagged_value(store: FeatureStore) -> None:
    store.registry.people.deactivate("admin1", actor=SYSTEM)
    tasks = _batch(store, keys=("a",))
    for who in ("stranger", "admin1"):
        [task] = store.privacy.redact_tasks(tasks, who, purpose="t")
        assert task.context["features_shown"]["email"] == "[redacted: pii]"
        assert task.context["features_shown"]["income"] == "[redacted: sensitive]"
    assert store.registry.people.audit.entries(action="privacy.view").empty


def test_a_tag_declared_after_the_task_was_made_still_redacts_it(store: FeatureStore) -> None:
    [task] = _batch(store, with_tags=False, keys=("a",))
    assert "column_tags" not in task.context
    store.privacy.declare(feature_subject(SPEC.id), {"age": ["pii"]}, actor=SYSTEM)
    [seen] = store.privacy.redact_tasks([task], "reviewer1", purpose="t")
    assert seen.context["features_shown"]["age"] == "[redacted: pii]"
    assert seen.context["features_shown"]["email"] == 1.5  # no longer tagged: shown
    [declared] = store.registry.people.audit.entries(action="privacy.tags").tail(1).itertuples()
    assert declared.target == "feature_set:people@v1"
    assert declared.detail["after"] == {"age": ["pii"]}


def test_exporters_and_renderers_refuse_a_task_that_skipped_redaction(
    store: FeatureStore,
) -> None:
    [raw] = _batch(store, keys=("a",))
    for show in (
        ensure_redacted,
        files.task_record,
        label_studio.task_to_label_studio,
        render.sample_image,
    ):
        with pytest.raises(PrivacyError, match="pass it through Privacy.redact_tasks"):
            show(raw)
    [seen] = store.privacy.redact_tasks([raw], "annotator1", purpose="t")
    assert files.task_record(seen)["redacted"] == {
        "email": ["pii"],
        "income": ["sensitive"],
        "zip": ["location"],
    }


def test_tags_are_declared_with_the_definition_but_not_fingerprinted(store: FeatureStore) -> None:
    untagged = dataclasses.replace(SPEC, tags={})
    assert untagged.fingerprint == SPEC.fingerprint  # same values: same version
    store.apply(untagged)  # re-registering with other tags is a tag change, not a conflict
    assert store.privacy.tags(feature_subject(SPEC.id)) == {}
    with pytest.raises(PrivacyError, match=r"tags \['nope'\], which are not among its features"):
        store.apply(dataclasses.replace(SPEC, version="v2", tags={"nope": ("pii",)}))
    with pytest.raises(PrivacyError, match="Invalid tag"):
        store.apply(dataclasses.replace(SPEC, version="v3", tags={"email": ("p i i",)}))


# -- real rounds, lineage and the model's tags ---------------------------------------------


@pytest.fixture
def tagged_digits(tmp_path: Path) -> FeatureStore:
    fs = FeatureStore(Settings.under(tmp_path / "digits"), actor=system_actor())
    digits.bootstrap(fs)
    fs.privacy.declare(source_subject(digits.SOURCE), {"p5": ["pii"]}, actor=SYSTEM)
    fs.privacy.declare(feature_subject("digits@v1"), {"p5": ["pii"], "p6": ["sensitive"]})
    return fs


def test_a_batch_records_the_tags_of_what_it_shows_and_a_model_says_it_learned_from_them(
    tagged_digits: FeatureStore,
) -> None:
    # The loop's first round takes the batch opened here (one batch per round).
    program = digits.program(batch_size=10, label_budget=20)
    pool = rounds.candidate_pool(tagged_digits, program, model=None)
    task = rounds.open_batch(tagged_digits, program, "round-001", pool, model_version=None)[0]
    assert task.context["features_shown_version"] == "digits@v1"
    assert task.context["column_tags"] == {"p5": ["pii"], "p6": ["sensitive"]}

    tracker = MemoryTracker("digits-in-memory")
    annotators = SimulatedAnnotators(digits.ground_truth_oracle(), digits.CLASSES, count=1)
    [result] = run_loop(tagged_digits, program, annotators, rounds=1, tracker=tracker)
    tags = tracker.version_tags(result.model_version.rpartition("/")[2])
    assert json.loads(tags["trained_on_tagged_columns"]) == ["p5:pii", "p6:sensitive"]

    graph = tagged_digits.lineage(f"model:{result.model_version}").to_dict()
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert nodes[f"model:{result.model_version}"]["attributes"]["trained_on_tagged_columns"] == [
        "p5:pii",
        "p6:sensitive",
    ]
    assert nodes["feature_set:digits@v1"]["attributes"]["tags"] == {
        "p5": ["pii"],
        "p6": ["sensitive"],
    }
    assert nodes[f"source:{digits.SOURCE}"]["attributes"]["tags"] == {"p5": ["pii"]}
    markdown = tagged_digits.lineage("digits@v1").to_markdown()
    assert "  - tags: p5=pii, p6=sensitive" in markdown
    assert "  - tags: p5=pii\n" in markdown
    assert "  - trained_on_tagged_columns: p5:pii, p6:sensitive" in markdown


def test_a_model_trained_on_no_tagged_column_says_so(tmp_path: Path) -> None:
    fs = FeatureStore(Settings.under(tmp_path / "plain"), actor=system_actor())
    digits.bootstrap(fs)
    program = digits.program(batch_size=10, label_budget=10)
    tracker = MemoryTracker("digits-in-memory")
    annotators = SimulatedAnnotators(digits.ground_truth_oracle(), digits.CLASSES, count=1)
    [result] = run_loop(fs, program, annotators, rounds=1, tracker=tracker)
    tags = tracker.version_tags(result.model_version.rpartition("/")[2])
    assert tags["trained_on_tagged_columns"] == "none"
    markdown = fs.lineage(f"model:{result.model_version}").to_markdown()
    assert "  - trained_on_tagged_columns: none" in markdown


# -- the command line: exports per format, lineage -----------------------------------------


@pytest.fixture
def cli_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FeatureStore:
    for variable in ("FP_DATABASE_URL", "FP_OFFLINE_DIR", "MLFLOW_TRACKING_URI", "FP_PROGRAM"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("FP_HOME", str(tmp_path / "home"))
    fs = FeatureStore(Settings.from_env(), actor=system_actor())
    fs.apply(SPEC)
    for role in ROLES:
        fs.registry.people.add(f"{role}1", role, actor=SYSTEM)
    _batch(fs, keys=("a",))
    return fs


def _leaves(value: object) -> list[object]:
    """Every scalar in a parsed JSON document, so hidden values are looked for anywhere."""
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


@pytest.mark.parametrize(
    ("role", "fmt"), [(r, f) for r in ROLES for f in ("label-studio", "jsonl")]
)
def test_exports_redact_for_the_exporting_person_per_format(
    cli_home: FeatureStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, role: str, fmt: str
) -> None:
    monkeypatch.setenv("FP_USER", f"{role}1")
    out = tmp_path / f"out.{fmt}"
    assert main(["tasks", "export", "--round", "round-001", "--format", fmt, "-o", str(out)]) == 0
    text = out.read_text()
    if fmt == "label-studio":
        [exported] = json.loads(text)
        features, table = exported["data"]["features"], exported["data"]["table"]
        redacted = exported["meta"]["redacted"]
    else:
        [exported] = [json.loads(line) for line in text.splitlines()]
        features, table, redacted = exported["features"], None, exported["redacted"]
    for column in ("email", "income", "zip"):
        visible = column in EXPECTED_VISIBLE[role]
        expected = VALUES[column] if visible else f"[redacted: {TAGS[column][0]}]"
        assert features[column] == expected
        if table is not None:
            assert table[column] == expected
        assert (column in redacted) is not visible
    if not EXPECTED_VISIBLE[role]:
        hidden = {v for c in ("email", "income", "zip") for v in (VALUES[c], str(VALUES[c]))}
        assert not hidden & set(_leaves(json.loads(text) if fmt == "label-studio" else exported))
    views = cli_home.registry.people.audit.entries(action="privacy.view")
    assert len(views) == (1 if EXPECTED_VISIBLE[role] else 0)
    for entry in views.itertuples():
        assert entry.actor == f"{role}1"
        assert entry.detail["purpose"] == f"export:{fmt}"
        assert entry.detail["via"] == "FP_USER"


def test_a_redacted_pixel_grid_is_exported_without_a_picture(tagged_digits: FeatureStore) -> None:
    program = digits.program(batch_size=2, label_budget=2)
    pool = rounds.candidate_pool(tagged_digits, program, model=None)
    tasks = rounds.open_batch(tagged_digits, program, "round-001", pool, model_version=None)
    tagged_digits.registry.people.add("ann", "annotator", actor=SYSTEM)
    tagged_digits.registry.people.add("lea", "lead", actor=SYSTEM)
    hidden = label_studio.export_tasks(
        tagged_digits.privacy.redact_tasks(tasks, "ann", purpose="t")
    )
    assert all("image" not in t["data"] for t in hidden)  # no picture can leak p5
    assert hidden[0]["data"]["table"]["p5"] == "[redacted: pii]"
    shown = label_studio.export_tasks(tagged_digits.privacy.redact_tasks(tasks, "lea", purpose="t"))
    assert all(t["data"]["image"].startswith("data:image/png") for t in shown)


def test_the_lineage_command_shows_tags(
    cli_home: FeatureStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lineage", "people@v1"]) == 0
    out = capsys.readouterr().out
    assert "  - tags: email=pii, income=sensitive, zip=location" in out
    assert main(["lineage", "people@v1", "--format", "json"]) == 0
    graph = json.loads(capsys.readouterr().out)
    [node] = [n for n in graph["nodes"] if n["id"] == "feature_set:people@v1"]
    assert node["attributes"]["tags"] == {
        "email": ["pii"],
        "income": ["sensitive"],
        "zip": ["location"],
    }


# -- templates -----------------------------------------------------------------------------


def _template(extra: dict) -> ProgramTemplate:
    document = json.loads(json.dumps(digits.template().document))
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(document.get(key), dict):
            document[key] = {**document[key], **value}
        else:
            document[key] = value
    return ProgramTemplate(document, digits.template().base_dir)


def test_a_template_declares_tags_and_policy_and_they_version_it() -> None:
    plain = _template({})
    tagged = _template(
        {
            "source": {"columns_tags": {"p5": ["pii"]}},
            "privacy": {
                "feature_tags": {"digits": {"p6": "sensitive"}},
                "policy": {"pii": "reviewer"},
            },
        }
    )
    assert tagged.validate(check_data=False) == []
    assert tagged.source().columns_tags == {"p5": ("pii",)}
    for spec in tagged.feature_sets():  # p5 inherited from the source, p6 declared
        assert spec.tags == {"p5": ("pii",), "p6": ("sensitive",)}
        assert spec.fingerprint == next(
            s.fingerprint for s in plain.feature_sets() if s.id == spec.id
        )
    assert tagged.privacy_policy() == {"pii": "reviewer"}
    assert tagged.fingerprint() != plain.fingerprint()  # a new template version


def test_a_template_tagging_a_column_the_source_lacks_says_where() -> None:
    errors = _template({"source": {"columns_tags": {"nope": ["pii"]}}}).validate(check_data=True)
    assert [str(e) for e in errors] == [
        "source.columns_tags.nope: column 'nope' is not in the source"
    ]


def test_a_template_with_bad_privacy_declarations_lists_every_error() -> None:
    bad = _template(
        {
            "source": {"columns_tags": {"p5": "p i i"}},
            "privacy": {
                "feature_tags": {"digits": {"nope": ["pii"]}, "other": {"x": ["pii"]}},
                "policy": {"pii": "boss"},
                "extra": 1,
            },
        }
    )
    paths = {e.path for e in bad.validate(check_data=False)}
    assert paths == {e.path for e in bad.validate(check_data=True)}  # never a crash
    assert {
        "source.columns_tags",
        "privacy.feature_tags.digits.nope",
        "privacy.feature_tags.other",
        "privacy.policy",
        "privacy.extra",
    } <= paths


def test_publishing_a_template_records_its_tags_and_policy_in_the_program_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for variable in ("FP_DATABASE_URL", "FP_OFFLINE_DIR", "MLFLOW_TRACKING_URI", "FP_PROGRAM"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("FP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FP_USER", "lou")
    project = tmp_path / "project"
    (project / "programs").mkdir(parents=True)
    document = json.loads(json.dumps(digits.template().document))
    document["source"]["columns_tags"] = {"p5": ["pii"]}
    document["privacy"] = {"policy": {"pii": "admin"}}
    (project / "programs" / "digits.yaml").write_text(json.dumps(document))
    assert main(["annotators", "add", "lou", "--role", "admin"]) == 0
    assert main(["programs", "publish", str(project)]) == 0, capsys.readouterr().err
    store = open_program_store(Settings.from_env(scoped=False), "digits")
    assert store.privacy.tags(source_subject(digits.SOURCE)) == {"p5": ("pii",)}
    for version in ("v1", "v2"):  # p5 is a feature of both: inherited from the source
        assert store.privacy.tags(feature_subject(f"digits@{version}")) == {"p5": ("pii",)}
    assert store.privacy.policy() == {"pii": "admin", "sensitive": "reviewer"}
    audited = store.registry.people.audit.entries()
    assert {"privacy.tags", "privacy.policy"} <= set(audited["action"])
