"""Weak labeling rules: declared with the program, fingerprinted, voting as `rule` machine
labels, estimated like annotators, and run by the round."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from feature_platform import FeatureStore
from feature_platform.catalog import digits
from feature_platform.cli import main
from feature_platform.labeling.rules import LabelingRule, RuleError, apply_rules, run_rules
from feature_platform.labeling.simulated import SimulatedAnnotators
from feature_platform.learning import rounds
from feature_platform.programs.template import ProgramTemplate

DIGIT_RULES = (
    LabelingRule("zero_ring", digits.zero_ring),
    LabelingRule("narrow_one", digits.narrow_one, weight=0.8),
)


def _frame(n: int = 3) -> pd.DataFrame:
    return pd.DataFrame({"x": range(n)}, index=pd.Index([f"s{i}" for i in range(n)]))


def _says_seven(features: pd.DataFrame, params) -> list:  # noqa: ANN001
    return ["7" if x == 1 else None for x in features["x"]]


def _says_three(features: pd.DataFrame, params) -> list:  # noqa: ANN001
    return [params.get("label", "3")] * len(features)


def _too_short(features: pd.DataFrame, params) -> list:  # noqa: ANN001
    return ["3"]


def _fails(features: pd.DataFrame, params) -> list:  # noqa: ANN001
    raise KeyError("px_99")


def test_rules_vote_or_abstain_and_bad_output_names_the_rule_and_sample() -> None:
    votes = apply_rules(
        [LabelingRule("seven", _says_seven), LabelingRule("three", _says_three)],
        _frame(),
        ["3", "7"],
    )
    assert votes[["sample_key", "rule", "label"]].values.tolist() == [
        ["s1", "seven", "7"],
        ["s0", "three", "3"],
        ["s1", "three", "3"],
        ["s2", "three", "3"],
    ]
    with pytest.raises(RuleError, match=r"Rule 'seven' labeled sample 's1' '7', which is not"):
        apply_rules([LabelingRule("seven", _says_seven)], _frame(), ["3", "4"])
    with pytest.raises(RuleError, match=r"Rule 'short' returned 1 values for 3 samples"):
        apply_rules([LabelingRule("short", _too_short)], _frame(), ["3"])
    with pytest.raises(RuleError, match=r"Rule 'boom' failed: KeyError"):
        apply_rules([LabelingRule("boom", _fails)], _frame(), ["3"])


def test_a_changed_rule_is_a_new_source() -> None:
    seven, three = LabelingRule("r", _says_seven), LabelingRule("r", _says_three)
    assert seven.source.startswith("rule:r@")
    assert seven.source == LabelingRule("r", _says_seven).source  # stable
    assert seven.source != three.source  # another body
    assert three.source != LabelingRule("r", _says_three, {"label": "4"}).source  # params


def test_a_bad_rule_records_no_vote_of_any_rule(digits_store: FeatureStore) -> None:
    program = digits.program(rules=(*DIGIT_RULES, LabelingRule("boom", _fails)))
    with pytest.raises(RuleError, match="'boom' failed"):
        run_rules(digits_store, program)
    assert digits_store.machine_labels.labels().empty


_VOTES = {"label": "0"}


def _votes_what_it_is_told(features: pd.DataFrame, params) -> list:  # noqa: ANN001
    # Stands for a rule whose inputs changed between runs (same code, same params).
    return [_VOTES["label"]] * min(len(features), 5) + [None] * max(len(features) - 5, 0)


def test_a_rule_that_votes_otherwise_on_a_rerun_records_a_later_vote(
    digits_store: FeatureStore,
) -> None:
    program = digits.program(rules=(LabelingRule("told", _votes_what_it_is_told),))
    first = run_rules(digits_store, program)
    _VOTES["label"] = "1"
    try:
        second = run_rules(digits_store, program)  # no conflict: a new vote per sample
    finally:
        _VOTES["label"] = "0"
    assert first.outcome.recorded == second.outcome.recorded == 5
    votes = digits_store.machine_labels.labels(["rule"])
    assert set(votes.drop_duplicates("sample_key", keep="last")["label"]) == {"1"}
    assert run_rules(digits_store, program).outcome.duplicates == 5  # same votes: recorded once


def test_the_round_runs_rules_and_dawid_skene_estimates_them(digits_store: FeatureStore) -> None:
    program = digits.program(batch_size=200, label_budget=400, rules=DIGIT_RULES)
    pool = rounds.candidate_pool(digits_store, program, model=None)
    rounds.open_batch(digits_store, program, "round-001", pool, model_version=None)
    oracle = digits.ground_truth_oracle()
    SimulatedAnnotators(oracle, digits.CLASSES, count=1).answer(digits_store.queue, "round-001")

    trained = rounds.retrain(digits_store, program, "round-001")
    votes = digits_store.machine_labels.labels(["rule"])
    sources = {rule.source for rule in DIGIT_RULES}
    assert set(votes["source"]) == sources
    holdout = set(digits_store.sources.read(digits.HOLDOUT_SOURCE)["sample_id"].astype(str))
    assert not holdout & set(votes["sample_key"])  # held-out samples judge, never vote
    snapshot = trained.snapshot
    assert snapshot.sources[DIGIT_RULES[0].source] == 0.5
    assert "rule" not in snapshot.sources  # declared versions only, not every rule vote
    assert snapshot.sources[DIGIT_RULES[1].source] == 0.8
    assert snapshot.label_kind_counts["human"] == 200
    assert snapshot.label_kind_counts["rule"] > 50  # samples only a rule labeled
    assert trained.metrics["labels"] == 200.0  # the learning curve counts people

    again = rounds.run_rules(digits_store, program)  # same rule versions: nothing new
    assert again.outcome.recorded == 0 and again.outcome.duplicates == len(votes)

    from feature_platform.labeling.rules import rule_report

    report = rule_report(digits_store, program).set_index("rule")
    zero = report.loc["zero_ring"]
    assert zero["votes"] == (votes["source"] == DIGIT_RULES[0].source).sum()
    assert 0.03 < zero["coverage"] < 0.2
    assert zero["estimated_accuracy"] > 0.85
    assert zero["overlap_with_people"] >= 5 and zero["agrees_with_people"] >= 0.9
    truth = pd.Series(oracle)
    labels = snapshot.labels.set_index("sample_key")["label"]
    only_rules = snapshot.kinds.set_index("sample_key")["label_source_kind"] == "rule"
    assert (labels[only_rules] == truth[labels[only_rules].index]).mean() > 0.9


RULES_YAML = [
    {"name": "zero_ring", "function": "feature_platform.catalog.digits:zero_ring"},
    {
        "name": "narrow_one",
        "function": "feature_platform.catalog.digits:narrow_one",
        "params": {"max_columns": 3},
        "weight": 0.8,
    },
]


def test_rules_are_declared_in_the_template_and_validated() -> None:
    document = yaml.safe_load(digits.TEMPLATE.read_text())
    plain = ProgramTemplate(dict(document), digits.TEMPLATE.parent.parent)
    declared = ProgramTemplate({**document, "rules": RULES_YAML, "rules_weight": 0.3}, Path("."))
    assert declared.validate(check_data=False) == []
    program = declared.program()
    assert [r.name for r in program.rules] == ["zero_ring", "narrow_one"]
    assert program.label_sources()[program.rules[0].source] == 0.3
    assert program.label_sources()[program.rules[1].source] == 0.8
    assert program.params()["rules"].startswith("rule:zero_ring@")
    assert declared.fingerprint() != plain.fingerprint()
    assert plain.program().label_sources() == {"human": 1.0, "feedback": 0.8}

    bad = ProgramTemplate(
        {
            **document,
            "rules": [
                {"name": "zero_ring", "function": "feature_platform.catalog.digits:nothing"},
                {"name": "zero_ring", "function": "x:y", "weight": -1, "colour": "red"},
            ],
            "feedback_trust": "high",
            "label_weights": {"robot": 1.0, "model": 0.5, "feedback:shop": 0.9},
        },
        Path("."),
    )
    errors = {str(e) for e in bad.validate(check_data=False)}
    assert any(
        e.startswith("rules[0].function: Module 'feature_platform.catalog.digits'") for e in errors
    )
    assert "rules[1].name: rule 'zero_ring' is declared twice" in errors
    assert "rules[1].weight: expected a number > 0, got -1" in errors
    assert any(e.startswith("rules[1].colour: unknown key") for e in errors)
    assert "feedback_trust: expected a number > 0, got 'high'" in errors
    assert [e for e in errors if e.startswith("label_weights")] == [
        "label_weights.robot: unknown label source; known kinds: ['human', 'model', 'rule', "
        "'feedback'] (or an exact source like 'feedback:<system>')"
    ]


def test_labels_rules_command_runs_and_reports(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("FP_HOME", str(tmp_path / "fp"))
    for name in ("FP_DATABASE_URL", "FP_OFFLINE_DIR", "MLFLOW_TRACKING_URI", "FP_PROGRAM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FP_USER", "lou")
    project = tmp_path / "project"
    (project / "programs").mkdir(parents=True)
    document = yaml.safe_load(digits.TEMPLATE.read_text())
    (project / "programs" / "digits.yaml").write_text(
        yaml.safe_dump({**document, "rules": RULES_YAML})
    )
    assert main(["annotators", "add", "lou", "--role", "admin"]) == 0
    assert main(["programs", "publish", str(project)]) == 0
    from feature_platform import Settings
    from feature_platform.programs.project import open_program_store

    store = open_program_store(Settings.from_env(scoped=False), "digits")
    digits.bootstrap(store)
    store.engine.dispose()
    capsys.readouterr()

    assert main(["labels", "rules", "--program", "digits", "--run"]) == 0
    out = capsys.readouterr().out
    assert "new votes, 0 already recorded" in out
    assert "zero_ring" in out and "narrow_one" in out
    assert main(["--program", "digits", "labels", "rules", "--run"]) == 0
    assert " 0 new votes" in capsys.readouterr().out  # idempotent
    assert main(["labels", "rules", "--program", "nope"]) != 0
    assert "not published" in capsys.readouterr().err
