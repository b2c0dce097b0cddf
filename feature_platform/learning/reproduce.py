"""Reproduce a registered model: rebuild its exact training set from the stores, retrain, and
check that the training-set fingerprint, the metrics and the predictions equal the logged ones.

What a model version's MLflow run must carry (the Dagster `model` asset and the plain loop
log them): tags `feature_set_version` (explicit, never an alias), `label_snapshot_id`,
`training_set_fingerprint`, `strategy`, `round`, `dagster_run_id`, and params `seed` plus
`model_<param>` for every classifier parameter (as `Program.params()` writes them).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from feature_platform.errors import FeaturePlatformError
from feature_platform.feature_store import FeatureStore
from feature_platform.learning.tracking import ModelTracker, TrackedModel

REQUIRED_TAGS = ("feature_set_version", "label_snapshot_id", "training_set_fingerprint")
LINEAGE_TAGS = ("strategy", "round", "dagster_run_id")
_VERSION = re.compile(r"^(?:models:/)?(?:(?P<name>[^/]+)/)?(?P<version>\d+)$")


@dataclass(frozen=True)
class ReproduceResult:
    model: TrackedModel
    feature_set_version: str
    label_snapshot_id: str
    logged_fingerprint: str
    rebuilt_fingerprint: str
    logged_metrics: dict[str, float]
    rebuilt_metrics: dict[str, float]
    predictions_match: bool  # logged and retrained model agree on every held-out sample
    lineage: dict[str, str]  # strategy, round, dagster_run_id as logged
    mismatches: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def summary(self) -> str:
        verdict = "reproduced" if self.ok else "NOT reproduced"
        lines = [
            f"{self.model.label} (run {self.model.run_id}): {verdict}",
            f"  feature set version  {self.feature_set_version}",
            f"  label snapshot       {self.label_snapshot_id}",
            f"  fingerprint          logged {self.logged_fingerprint}, "
            f"rebuilt {self.rebuilt_fingerprint}",
        ]
        for name in sorted(self.rebuilt_metrics):
            logged = self.logged_metrics.get(name)
            shown = "-" if logged is None else f"{logged:.6g}"
            lines.append(f"  {name:<20} logged {shown}, rebuilt {self.rebuilt_metrics[name]:.6g}")
        lines.append(
            f"  predictions          {'identical' if self.predictions_match else 'differ'}"
        )
        lines += [f"  {k:<20} {v}" for k, v in self.lineage.items()]
        lines += [f"  mismatch: {m}" for m in self.mismatches]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "model_version": self.model.label,
            "run_id": self.model.run_id,
            "ok": self.ok,
            "feature_set_version": self.feature_set_version,
            "label_snapshot_id": self.label_snapshot_id,
            "logged_fingerprint": self.logged_fingerprint,
            "rebuilt_fingerprint": self.rebuilt_fingerprint,
            "logged_metrics": self.logged_metrics,
            "rebuilt_metrics": self.rebuilt_metrics,
            "predictions_match": self.predictions_match,
            "lineage": self.lineage,
            "mismatches": self.mismatches,
            "warnings": self.warnings,
        }


def parse_model_version(text: str, default_name: str) -> tuple[str, str]:
    """`digits-classifier/3`, `models:/digits-classifier/3` or `3` -> (name, version)."""
    match = _VERSION.match(text.strip())
    if not match:
        raise FeaturePlatformError(
            f"Cannot read model version {text!r}; write '<registered model>/<version>' "
            f"(e.g. '{default_name}/3') or just the version number."
        )
    return match.group("name") or default_name, match.group("version")


def _param_value(text: str) -> Any:
    """MLflow stores params as text; read numbers, booleans and None back as such."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def reproduce(
    store: FeatureStore, tracker: ModelTracker, model_version: str, tolerance: float = 0.0
) -> ReproduceResult:
    """Rebuild the training set `model_version` was trained on, retrain and compare.

    Metrics must match within `tolerance` (default: exactly). Raises FeaturePlatformError when
    the version, its lineage tags, its label snapshot or its feature set version is missing;
    returns a result listing mismatches when the rebuild differs.
    """
    from feature_platform.learning.rounds import holdout, train_and_evaluate
    from feature_platform.learning.training import build_training_set
    from feature_platform.programs.model import DEFAULT_ESTIMATOR, Program

    name, version = parse_model_version(model_version, tracker.model_name)
    if name != tracker.model_name:
        tracker = ModelTracker(tracker.tracking_uri, tracker.artifact_dir, name, tracker.experiment)
    tracked = tracker.get(version)
    run = tracker.run(tracked.run_id)
    tags = {**tracker.version_tags(version), **run.data.tags}
    missing = [t for t in REQUIRED_TAGS if not tags.get(t)]
    if missing:
        raise FeaturePlatformError(
            f"{tracked.label} (run {tracked.run_id}) lacks the lineage tag(s) {missing}; "
            f"it cannot be rebuilt. Models must be logged with {list(REQUIRED_TAGS)}."
        )
    params = {k: _param_value(v) for k, v in run.data.params.items()}
    if "seed" not in params:
        raise FeaturePlatformError(f"{tracked.label} (run {tracked.run_id}) has no 'seed' param.")
    snapshot = store.labels.get(tags["label_snapshot_id"])
    training_set = build_training_set(store, snapshot, tags["feature_set_version"])
    program = Program(
        feature_set=tags["feature_set_version"],
        classes=tuple(sorted(set(training_set.y.tolist()))),
        name=str(params.get("program", "program")),
        strategy=str(params.get("strategy", "margin")),
        seed=int(params["seed"]),
        holdout_source=str(params.get("holdout_source", "")) or None,
        estimator=str(params.get("estimator", DEFAULT_ESTIMATOR)),
        model_params={k[len("model_") :]: v for k, v in params.items() if k.startswith("model_")},
    )
    model, metrics = train_and_evaluate(store, program, training_set, snapshot.created_at)

    logged_metrics = {k: float(v) for k, v in run.data.metrics.items()}
    mismatches = []
    if training_set.fingerprint != tags["training_set_fingerprint"]:
        mismatches.append(
            f"training set fingerprint {training_set.fingerprint} != logged "
            f"{tags['training_set_fingerprint']}: the labels or feature values behind "
            f"{tags['label_snapshot_id']} x {tags['feature_set_version']} changed"
        )
    for metric, value in metrics.items():
        if metric in logged_metrics and abs(logged_metrics[metric] - value) > tolerance:
            mismatches.append(f"{metric} {value} != logged {logged_metrics[metric]}")
    X, _ = holdout(store, program, training_set, snapshot.created_at)  # noqa: N806
    logged_model = tracker.load(tracked)
    same = bool(np.array_equal(logged_model.predict(X), model.predict(X)))
    if not same:
        mismatches.append("the retrained model's held-out predictions differ from the logged one's")
    lineage = {t: tags.get(t, "") for t in LINEAGE_TAGS}
    warnings = [f"tag {t!r} is missing" for t, v in lineage.items() if not v]
    return ReproduceResult(
        model=tracked,
        feature_set_version=tags["feature_set_version"],
        label_snapshot_id=tags["label_snapshot_id"],
        logged_fingerprint=tags["training_set_fingerprint"],
        rebuilt_fingerprint=training_set.fingerprint,
        logged_metrics=logged_metrics,
        rebuilt_metrics=metrics,
        predictions_match=same,
        lineage=lineage,
        mismatches=mismatches,
        warnings=warnings,
    )
