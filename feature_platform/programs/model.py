"""`Program`: the settings one labeling program's rounds run under.

The core (rounds, selection, stopping, promotion) reads only this object; it knows no data set
by name. A program is usually built from a published template (`programs.template`), which
records the template version every round ran under.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from feature_platform.errors import FeaturePlatformError

DEFAULT_ESTIMATOR = "sklearn.linear_model:LogisticRegression"
DEFAULT_MODEL_PARAMS: dict[str, Any] = {"C": 1.0, "max_iter": 2000}
DEFAULT_PROMOTION_TOLERANCE = 0.01
DEFAULT_RULES_WEIGHT = 0.5
DEFAULT_FEEDBACK_TRUST = 0.8


class EstimatorImportError(FeaturePlatformError, ImportError):
    """A model's import path that does not name an importable scikit-learn estimator."""


def import_object(path: str) -> Any:
    """`package.module:Name` (or `package.module.Name`) imported, or an error saying why."""
    module_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not attr:
        raise EstimatorImportError(f"{path!r} is not an import path like 'package.module:Name'.")
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise EstimatorImportError(
            f"Cannot import module {module_name!r} of {path!r}: {exc}"
        ) from exc
    for part in attr.split("."):
        if not hasattr(found, part):
            raise EstimatorImportError(f"Module {module_name!r} has no {attr!r} (from {path!r}).")
        found = getattr(found, part)
    return found


@dataclass(frozen=True)
class Program:
    """What to label, how to pick, what to train, when to stop."""

    feature_set: str  # the reference (usually an alias, e.g. `digits@training`) models train on
    classes: tuple[str, ...]
    holdout_source: str | None = None  # raw source with the held-out split's true labels
    name: str = "program"
    strategy: str = "margin"
    batch_size: int = 20
    label_budget: int = 200
    answers_per_task: int = 1
    seed: int = 0
    # The model: a scikit-learn estimator (or a function returning a pipeline) by import path.
    estimator: str = DEFAULT_ESTIMATOR
    model_params: Mapping[str, Any] = field(default_factory=dict)
    # Knobs of the query strategy (committee_size, candidate_factor, cold_start); see
    # strategies.StrategyOptions.
    strategy_options: Mapping[str, Any] = field(default_factory=dict)
    # What annotators see beside the sample (None: the training reference).
    labeling_feature_set: str | None = None
    promotion_tolerance: float = DEFAULT_PROMOTION_TOLERANCE
    instructions: str = ""
    template_version: str | None = None  # `name@vN` of the template this program runs under
    # Weak labeling rules (labeling.rules.LabelingRule) voting on samples each round, and the
    # weight of each rule's votes in label snapshots (a rule's own `weight` overrides it).
    rules: tuple[Any, ...] = ()
    rules_weight: float = DEFAULT_RULES_WEIGHT
    # Weight of downstream feedback in label snapshots (an import's --trust, or a system named
    # in `label_weights`, overrides it).
    feedback_trust: float = DEFAULT_FEEDBACK_TRUST
    # Extra snapshot weights by source kind or exact source (e.g. {"model": 0.5}).
    label_weights: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        if len(self.classes) < 2:
            raise FeaturePlatformError(
                f"Program {self.name!r} needs at least two classes, got {list(self.classes)}."
            )

    @property
    def shown_feature_set(self) -> str:
        return self.labeling_feature_set or self.feature_set

    def pinned(self, feature_set_id: str) -> Program:
        """The same program with its training reference resolved to one explicit version, so
        every step of a round reads the same version even if the alias moves meanwhile."""
        return dataclasses.replace(self, feature_set=feature_set_id)

    def replace(self, **changes: Any) -> Program:
        return dataclasses.replace(self, **changes)

    def build_estimator(self) -> Any:
        """A fresh, unfitted estimator: `estimator` called with `model_params` (a class or a
        factory returning a pipeline). A `random_state` parameter, if any, is set to `seed`."""
        made = import_object(self.estimator)
        params = dict(self.model_params)
        if self.estimator == DEFAULT_ESTIMATOR:
            params = {**DEFAULT_MODEL_PARAMS, **params}
        try:
            model = made(**params)
        except TypeError as exc:
            raise EstimatorImportError(
                f"{self.estimator} does not take the parameters {sorted(params)}: {exc}"
            ) from exc
        if not hasattr(model, "fit") or not hasattr(model, "predict_proba"):
            raise EstimatorImportError(
                f"{self.estimator} did not make a classifier with fit and predict_proba."
            )
        if "random_state" in model.get_params() and "random_state" not in params:
            model.set_params(random_state=self.seed)
        return model

    def label_sources(self) -> dict[str, float]:
        """The sources (and weights) this program's label snapshots use: people at 1, each
        declared rule at its weight (by exact source: votes of an earlier version of a rule,
        or of a rule no longer declared, are not used), downstream feedback at
        `feedback_trust`, plus `label_weights`."""
        sources = {"human": 1.0, "feedback": float(self.feedback_trust)}
        if self.rules:
            for rule in self.rules:
                sources[rule.source] = float(
                    self.rules_weight if rule.weight is None else rule.weight
                )
        return sources | {str(k): float(v) for k, v in self.label_weights.items()}

    def params(self) -> dict[str, Any]:
        """Flat settings, as logged to MLflow with each model."""
        return {
            "program": self.name,
            "template_version": self.template_version or "",
            "feature_set": self.feature_set,
            "strategy": self.strategy,
            "batch_size": self.batch_size,
            "label_budget": self.label_budget,
            "answers_per_task": self.answers_per_task,
            "seed": self.seed,
            "holdout_source": self.holdout_source or "",
            "estimator": self.estimator,
            "promotion_tolerance": self.promotion_tolerance,
            **{f"model_{k}": v for k, v in self.model_params.items()},
            **{f"strategy_{k}": v for k, v in self.strategy_options.items()},
            **({"rules": ", ".join(r.source for r in self.rules)} if self.rules else {}),
        }
