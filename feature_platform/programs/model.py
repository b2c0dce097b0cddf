"""`Program`: the settings one labeling program's rounds run under.

The core (rounds, selection, stopping, promotion) reads only this object; it knows no data set
by name. A program is usually built from a published template (`programs.template`), which
records the template version every round ran under.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from feature_platform.errors import FeaturePlatformError, closest
from feature_platform.learning.auto_label_scorers import CHAMPION, scorer_params, scorer_problems

DEFAULT_ESTIMATOR = "sklearn.linear_model:LogisticRegression"
DEFAULT_MODEL_PARAMS: dict[str, Any] = {"C": 1.0, "max_iter": 2000}
DEFAULT_PROMOTION_TOLERANCE = 0.01
DEFAULT_RULES_WEIGHT = 0.5
DEFAULT_FEEDBACK_TRUST = 0.8


AUTO_LABEL_KEYS = (
    "enabled",
    "target_precision",
    "confidence",
    "max_share",
    "high_stakes",
    "review_fraction",
    "weight",
    "scorer",
    "scorer_params",
)


@dataclass(frozen=True)
class AutoLabelSettings:
    """Auto-labels from the champion model (`learning/auto_labels.py`); off unless enabled.

    Each round the threshold is the lowest model confidence whose precision on the held-out
    split is at least `target_precision` by a one-sided Clopper-Pearson bound at `confidence`;
    at most `max_share` of the round's unlabeled pool is auto-labeled (most confident first
    within an equal quota per predicted class), never a class in `high_stakes`;
    `review_fraction` of them go to people as review tasks in the next batch.
    `weight` is the weight of `model` labels in label snapshots (humans weigh 1.0).
    `scorer` proposes the labels and their confidence (`learning/auto_label_scorers.py`):
    `champion` (the champion model) or `label_spreading` (semi-supervised, over a kNN graph
    of labeled, pool and held-out samples), with `scorer_params` over its defaults."""

    enabled: bool = False
    target_precision: float = 0.99
    confidence: float = 0.95
    max_share: float = 0.2
    high_stakes: tuple[str, ...] = ()
    review_fraction: float = 0.1
    weight: float = 1.0
    scorer: str = CHAMPION
    scorer_params: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "high_stakes", tuple(str(c) for c in self.high_stakes))
        object.__setattr__(self, "scorer_params", dict(self.scorer_params or {}))

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any] | None) -> AutoLabelSettings:
        given = dict(settings or {})
        if "high_stakes" in given:
            given["high_stakes"] = tuple(given["high_stakes"] or ())
        return cls(**{k: v for k, v in given.items() if k in AUTO_LABEL_KEYS})

    @staticmethod
    def problems(settings: Any, classes: Sequence[str] | None = None) -> list[tuple[str, str]]:
        """(key, message) for every bad setting of an `auto_labels` mapping; `classes` (the
        label set) checks that high-stakes classes exist."""
        if settings is None:
            return []
        if not isinstance(settings, Mapping):
            return [("", "expected a mapping (enabled, target_precision, max_share, ...)")]
        found: list[tuple[str, str]] = []
        for key in settings:
            if key not in AUTO_LABEL_KEYS:
                found.append((str(key), f"unknown key.{closest(str(key), AUTO_LABEL_KEYS)}"))
        if not isinstance(settings.get("enabled", False), bool):
            found.append(("enabled", f"expected true or false, got {settings['enabled']!r}"))
        ranges = {
            # (low, high, low included, high included)
            "target_precision": (0.0, 1.0, False, False),
            "confidence": (0.0, 1.0, False, False),
            "max_share": (0.0, 1.0, True, True),
            "review_fraction": (0.0, 1.0, True, True),
            "weight": (0.0, math.inf, False, False),
        }
        for key, (low, high, low_in, high_in) in ranges.items():
            if key not in settings:
                continue
            value = settings[key]
            number = isinstance(value, int | float) and not isinstance(value, bool)
            inside = (
                number
                and math.isfinite(value)
                and (low <= value if low_in else low < value)
                and (value <= high if high_in else value < high)
            )
            if not inside:
                span = f"{'[' if low_in else '('}{low}, {high}{']' if high_in else ')'}"
                found.append((key, f"expected a number in {span}, got {value!r}"))
        stakes = settings.get("high_stakes", [])
        if not isinstance(stakes, list | tuple) or not all(
            isinstance(c, str | int) and not isinstance(c, bool) for c in stakes
        ):
            found.append(("high_stakes", f"expected a list of classes, got {stakes!r}"))
        elif classes is not None:
            for i, cls in enumerate(stakes):
                if str(cls) not in {str(c) for c in classes}:
                    found.append(
                        (
                            f"high_stakes[{i}]",
                            f"{cls!r} is not in the label set {[str(c) for c in classes]}",
                        )
                    )
        found += [
            (key, message)
            for key, message in scorer_problems(
                settings.get("scorer", CHAMPION), settings.get("scorer_params")
            )
        ]
        return found

    def resolved_scorer_params(self) -> dict[str, Any]:
        """The scorer's parameters in force: its defaults with `scorer_params` over them."""
        return scorer_params(self.scorer, self.scorer_params)

    def params(self) -> dict[str, Any]:
        """Flat, for MLflow (nothing when off)."""
        if not self.enabled:
            return {}
        return {
            "auto_labels_target_precision": self.target_precision,
            "auto_labels_confidence": self.confidence,
            "auto_labels_max_share": self.max_share,
            "auto_labels_high_stakes": ",".join(self.high_stakes),
            "auto_labels_review_fraction": self.review_fraction,
            "auto_labels_weight": self.weight,
            "auto_labels_scorer": self.scorer,
            **{f"auto_labels_scorer_{k}": v for k, v in self.resolved_scorer_params().items()},
        }


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
    auto_labels: AutoLabelSettings = field(default_factory=AutoLabelSettings)
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
        if isinstance(self.auto_labels, Mapping):
            object.__setattr__(
                self, "auto_labels", AutoLabelSettings.from_mapping(self.auto_labels)
            )
        settings = dataclasses.asdict(self.auto_labels)
        settings["high_stakes"] = list(settings["high_stakes"])
        problems = AutoLabelSettings.problems(settings, self.classes)
        if problems:
            raise FeaturePlatformError(
                f"Program {self.name!r} auto_labels: "
                + "; ".join(f"{key or 'auto_labels'}: {message}" for key, message in problems)
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
        `feedback_trust`, the model's auto-labels at `auto_labels.weight` when enabled, plus
        `label_weights`."""
        sources = {"human": 1.0, "feedback": float(self.feedback_trust)}
        if self.auto_labels.enabled:
            sources["model"] = float(self.auto_labels.weight)
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
            **self.auto_labels.params(),
            **({"rules": ", ".join(r.source for r in self.rules)} if self.rules else {}),
        }
