"""Every importer fuzzed with Hypothesis (random bytes, random JSON, random CSV, and mutated
real exports): the outcome is rows, each taken or rejected with a reason, or the whole file
refused with a FeaturePlatformError, never any other exception (a traceback for the user)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from fault_support import record
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from feature_platform import FeatureStore, Settings
from feature_platform.commands.labels import read_rows
from feature_platform.errors import FeaturePlatformError
from feature_platform.governance.roles import AnnotatorRegistry
from feature_platform.labeling.imports import IncomingAnswer, import_answers
from feature_platform.labeling.queue import TaskSpec

pytestmark = pytest.mark.slow

FORMATS = ("label-studio", "jsonl", "csv")
FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,  # seeded: the same examples every run
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
COUNTS = {"examples": 0, "violations": []}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(
        ["", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59Z", "2026-11-25T19:32:26Z", "1e309"]
    )
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
answer_keys = st.sampled_from(
    [
        "task_id",
        "round",
        "sample_key",
        "annotator",
        "label",
        "answered_at",
        "time_spent_s",
        "submission_id",
        "annotations",
        "data",
        "meta",
        "id",
        "annotation_id",
        "completed_by",
        "result",
        "was_cancelled",
        "lead_time",
        "created_at",
        "annotator",
    ]
)
answer_like = st.dictionaries(answer_keys, json_values, max_size=8)
EDGE_TIME = "0001-01-01T00:00:00+01:00"
times = st.sampled_from(
    ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-11-25T19:32:26Z", "x", 0]
)
durations = st.sampled_from(["1e309", "NaN", "-1", "3.5", 1e308, -0.0, True])
# Shaped like real rows, so the checks past parsing (times, durations, people) are reached.
record_like = st.fixed_dictionaries(
    {"annotator": st.sampled_from(["ann", "", "nobody", 1]), "label": scalars},
    optional={
        "task_id": scalars,
        "round": st.sampled_from(["r1", "r2", ""]),
        "sample_key": st.sampled_from(["s0", "s1", "s9", ""]),
        "answered_at": times,
        "time_spent_s": durations | scalars,
        "submission_id": scalars,
    },
)
min_record_like = st.fixed_dictionaries(
    {"id": scalars, "annotation_id": scalars},
    optional={
        "label": scalars,
        "annotator": st.sampled_from([1, "1", 2, None, "ann@example.com"]),
        "created_at": times,
        "lead_time": durations | scalars,
        "round": st.just("r1"),
        "sample_key": st.sampled_from(["s0", "s1"]),
    },
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    fs = FeatureStore(Settings.under(tmp_path_factory.mktemp("fuzz") / "fp"))
    AnnotatorRegistry(fs.engine).add("ann", "annotator", {"label-studio": "1"})
    specs = [TaskSpec(f"s{i}", "margin", 0.5, "pick", "f@v1") for i in range(3)]
    fs.queue.create_batch("r1", specs, ["a", "b"])
    return fs


def check(store: FeatureStore, tmp_path: Path, data: bytes, fmt: str) -> None:
    """Read `data` as `fmt` the way `labels import` does, then import the rows."""
    COUNTS["examples"] += 1
    path = tmp_path / f"fuzz.{fmt}"
    path.write_bytes(data)
    try:
        rows = read_rows(path, fmt)
        for row in rows:
            assert isinstance(row, IncomingAnswer)
        report = import_answers(store.engine, store.queue, rows, source="fuzz", format=fmt)
        for rejected in report.rejected:
            assert rejected.reason.strip(), rejected
    except FeaturePlatformError as exc:  # a whole-file refusal, with its reason
        assert str(exc).strip()
    except Exception as exc:  # noqa: BLE001 - anything else is what the user must never see
        COUNTS["violations"].append(f"{fmt}: {type(exc).__name__}: {exc} for {data[:120]!r}")
        raise


@FUZZ
@given(data=st.binary(max_size=400), fmt=st.sampled_from(FORMATS))
def test_random_bytes(store: FeatureStore, tmp_path: Path, data: bytes, fmt: str) -> None:
    check(store, tmp_path, data, fmt)


@FUZZ
@given(
    value=st.lists(record_like | min_record_like | answer_like, max_size=5) | json_values,
    fmt=st.sampled_from(FORMATS),
)
# Known edges, always tried: a time before datetime.min once in UTC, an overflowing duration.
@example(value=[{"annotator": "ann", "label": "a", "answered_at": EDGE_TIME}], fmt="jsonl")
@example(
    value=[{"id": 1, "annotation_id": 2, "label": "a", "created_at": EDGE_TIME}], fmt="label-studio"
)
@example(value=[{"annotator": "ann", "label": "a", "time_spent_s": 1e308 * 10}], fmt="jsonl")
def test_random_json(store: FeatureStore, tmp_path: Path, value: object, fmt: str) -> None:
    check(store, tmp_path, json.dumps(value, allow_nan=True).encode(), fmt)
    if fmt == "jsonl" and isinstance(value, list):
        text = "\n".join(json.dumps(v, allow_nan=True) for v in value)
        check(store, tmp_path, text.encode(), fmt)


@FUZZ
@given(
    header=st.lists(answer_keys | st.text(max_size=8), min_size=1, max_size=6),
    rows=st.lists(st.lists(st.text(max_size=12), max_size=7), max_size=6),
    fmt=st.sampled_from(("csv", "label-studio")),
    cut=st.integers(min_value=0, max_value=400),
)
def test_random_csv(
    store: FeatureStore,
    tmp_path: Path,
    header: list[str],
    rows: list[list[str]],
    fmt: str,
    cut: int,
) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    text = buffer.getvalue()
    check(store, tmp_path, text.encode(), fmt)
    check(store, tmp_path, text[:cut].encode(), fmt)  # truncated anywhere, quotes included


REFERENCE = Path(__file__).parents[1] / "labeling" / "fixtures" / "label_studio"


@FUZZ
@given(
    cut=st.integers(min_value=0, max_value=6000),
    junk=st.text(max_size=5),
)
def test_mutated_real_label_studio_export(
    store: FeatureStore, tmp_path: Path, cut: int, junk: str
) -> None:
    text = (REFERENCE / "label-studio-1.23.2-export.json").read_text()
    check(store, tmp_path, (text[:cut] + junk + text[cut:]).encode(), "label-studio")
    check(store, tmp_path, text[:cut].encode(), "label-studio")


def test_zz_fuzz_counts() -> None:
    """Runs last in this module: the counts of the fuzzing above for the summary."""
    record("Hypothesis fuzz of every importer (examples)", COUNTS["examples"], COUNTS["violations"])
    assert COUNTS["violations"] == []
