"""Program templates: a labeling program declared in YAML, validated with every error and its
path, turned into the core's `Program`, `SourceSpec`, feature set specs and stopping rules.

```yaml
name: churn                      # the program (prefixes its assets, names its model)
description: ...
source:                          # declared, not coded (store.sources.SourceSpec)
  kind: csv                      # csv | parquet | sql | python
  path: data/*.csv               # file, folder or glob (sql: url + table | query; python: loader)
  entity: customer_id
  event_time: signed_up_at       # arrival: rows load by day
  created_time: null
  ground_truth: churned          # true labels (held-out evaluation, simulated annotators)
  holdout_fraction: 0.2          # or split_column: a column whose 'holdout' rows are held out
  columns: {tenure: int64}       # optional: declared columns and dtypes (Pandera guards them)
  columns_tags: {email: [pii], income: [sensitive]}   # optional: privacy tags of columns
  start_date: 2024-01-01         # first day of arrivals (day partitions start here)
  end_date: null                 # optional: a historical source stops here
  partitions: daily              # daily | weekly | monthly arrival partitions
features:                        # FeatureSetSpec objects by import path
  - features.churn:CHURN_V1
aliases: {training: v1, labeling: v1, serving: v1}   # set when first published
training_features: churn@training
labeling_features: churn@labeling
labels:
  classes: ["no", "yes"]
  instructions: Did this customer leave within 90 days?
model:
  estimator: sklearn.linear_model:LogisticRegression   # class or pipeline factory
  params: {C: 1.0, max_iter: 2000}
  registered_name: churn-classifier                    # default <name>-classifier
strategy: {name: margin, params: {cold_start: random}}
batch_size: 20
overlap: 1                       # answers per task
label_budget: 200
stopping: {target_accuracy: null, kappa_threshold: 0.99, kappa_window: 3, plateau_patience: null}
promotion: {tolerance: 0.01}
annotators: {pool: [alice, bob], roles: {bob: reviewer}}
seed: 0
auto_labels:                     # optional (off when absent): learning/auto_labels.py
  enabled: true
  target_precision: 0.99         # held-out precision bound the threshold must reach
  confidence: 0.95               # level of that one-sided Clopper-Pearson bound
  max_share: 0.2                 # at most this share of the round's unlabeled pool
  high_stakes: ["yes"]           # classes never auto-labeled
  review_fraction: 0.1           # share of each round's auto-labels people review
  weight: 1.0                    # weight of model labels in label snapshots
  scorer: champion               # or label_spreading (learning/auto_label_scorers.py)
  scorer_params: {}              # e.g. {n_neighbors: 7, alpha: 0.2} for label_spreading
rules:                           # optional weak labeling rules (labeling/rules.py)
  - {name: dark_center, function: features.rules:dark_center, params: {}, weight: 0.5}
rules_weight: 0.5                # a rule's weight in label snapshots unless it sets its own
feedback_trust: 0.8              # downstream feedback's weight unless an import sets --trust
label_weights: {model: 0.5}      # more snapshot weights by source kind or exact source
privacy:                         # optional (governance/privacy.py)
  feature_tags: {churn: {tenure: [sensitive]}}   # tags of feature columns, by feature set
  policy: {pii: lead, sensitive: reviewer}       # least role that sees a tag (these defaults)
```

A feature named like a tagged source column inherits its tags; tags of a feature set also come
from its Python definition (`FeatureSetSpec.tags`). Tags and policy are part of the template,
so changing them publishes a new template version; they do not change a feature set's
fingerprint (see `FeatureSetSpec.tags`).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from feature_platform.errors import FeaturePlatformError, closest
from feature_platform.governance.privacy import (
    PrivacyError,
    check_policy,
    check_tags,
    inherited_tags,
    merge_tags,
)
from feature_platform.labeling.machine_labels import SOURCE_KINDS as SOURCE_KINDS_OF_LABELS
from feature_platform.labeling.rules import LabelingRule
from feature_platform.names import InvalidNameError, check_name
from feature_platform.programs.model import (
    DEFAULT_ESTIMATOR,
    DEFAULT_FEEDBACK_TRUST,
    DEFAULT_PROMOTION_TOLERANCE,
    DEFAULT_RULES_WEIGHT,
    AutoLabelSettings,
    EstimatorImportError,
    Program,
    import_object,
)
from feature_platform.store.feature_set import FeatureSetSpec
from feature_platform.store.refs import parse_feature_set
from feature_platform.store.sources import SOURCE_KINDS, SourceSpec

STRATEGY_OPTIONS = ("committee_size", "candidate_factor", "cold_start")
ROLES = ("annotator", "reviewer", "engineer", "admin")
DEFAULTS: dict[str, Any] = {
    "description": "",
    "aliases": {"training": "v1", "labeling": "v1", "serving": "v1"},
    "model": {"estimator": DEFAULT_ESTIMATOR, "params": {}},
    "strategy": {"name": "margin", "params": {}},
    "batch_size": 20,
    "overlap": 1,
    "label_budget": 200,
    "stopping": {
        "target_accuracy": None,
        "kappa_threshold": 0.99,
        "kappa_window": 3,
        "plateau_patience": None,
    },
    "promotion": {"tolerance": DEFAULT_PROMOTION_TOLERANCE},
    "annotators": {"pool": [], "roles": {}},
    "seed": 0,
}
# Optional keys read with their defaults, outside DEFAULTS so templates that leave them out
# keep their resolved document (and fingerprint).
OPTIONAL = ("rules", "rules_weight", "feedback_trust", "label_weights", "auto_labels")
TOP_LEVEL = (
    "name",
    "privacy",
    "source",
    "features",
    "training_features",
    "labeling_features",
    "labels",
    *DEFAULTS,
    *OPTIONAL,
)
SOURCE_KEYS = (
    "name",
    "kind",
    "path",
    "url",
    "table",
    "query",
    "loader",
    "entity",
    "event_time",
    "created_time",
    "ground_truth",
    "holdout_fraction",
    "split_column",
    "columns",
    "columns_tags",
    "start_date",
    "end_date",
    "partitions",
)
ARRIVAL_PARTITIONS = ("daily", "weekly", "monthly")


@dataclass(frozen=True)
class TemplateError:
    path: str  # e.g. `strategy.name`, `source.entity`, `features[1]`
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class TemplateValidationError(FeaturePlatformError):
    """A template with one or more errors; `errors` lists each with its path."""

    def __init__(self, where: str, errors: list[TemplateError]) -> None:
        self.where = where
        self.errors = errors
        lines = "\n".join(f"  {e}" for e in errors)
        super().__init__(f"{where}: {len(errors)} error(s)\n{lines}")


def _merge(defaults: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(defaults))
    for key, value in given.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _plain(value: Any) -> Any:
    """YAML dates and the like as JSON-able values (templates are stored as JSON)."""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class ProgramTemplate:
    """A parsed (not necessarily valid) template; `base_dir` resolves relative source paths."""

    document: Mapping[str, Any]
    base_dir: Path

    @classmethod
    def from_yaml(cls, text: str, base_dir: Path, where: str = "<template>") -> ProgramTemplate:
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise TemplateValidationError(where, [TemplateError("$", f"not YAML: {exc}")]) from exc
        if not isinstance(loaded, Mapping):
            raise TemplateValidationError(where, [TemplateError("$", "expected a mapping")])
        return cls(_plain(loaded), Path(base_dir))

    @classmethod
    def from_file(cls, path: Path, base_dir: Path | None = None) -> ProgramTemplate:
        path = Path(path)
        # A template in <project>/programs/ resolves paths against the project directory.
        base = base_dir or (path.parent.parent if path.parent.name == "programs" else path.parent)
        return cls.from_yaml(path.read_text(), base, where=str(path))

    @property
    def name(self) -> str:
        return str(self.document.get("name", ""))

    @property
    def resolved(self) -> dict[str, Any]:
        """The document with every default filled in (what is fingerprinted and stored)."""
        doc = _merge(DEFAULTS, self.document)
        name = doc.get("name", "program")
        doc.setdefault("training_features", f"{name}@training")
        doc.setdefault("labeling_features", doc["training_features"])
        doc["model"].setdefault("registered_name", f"{name}-classifier")
        if isinstance(doc.get("source"), Mapping):
            doc["source"] = {"name": f"{name}_raw", "holdout_fraction": 0.2, **doc["source"]}
        if isinstance(doc.get("annotators"), Mapping):  # `pool:` / `roles:` left empty
            people = doc["annotators"]
            doc["annotators"] = {
                **people,
                "pool": people.get("pool") or [],
                "roles": people.get("roles") or {},
            }
        return doc

    # -- the parts the core and the Dagster factory use (valid templates only) -------------

    def source(self) -> SourceSpec:
        s = self.resolved["source"]
        return SourceSpec(
            name=s["name"],
            kind=s["kind"],
            entity=s["entity"],
            event_time=s["event_time"],
            path=s.get("path"),
            url=s.get("url"),
            table=s.get("table"),
            query=s.get("query"),
            loader=s.get("loader"),
            created_time=s.get("created_time"),
            ground_truth=s.get("ground_truth"),
            holdout_fraction=float(s.get("holdout_fraction", 0.2)),
            split_column=s.get("split_column"),
            columns=dict(s.get("columns") or {}),
            columns_tags=check_tags(s.get("columns_tags"), "source.columns_tags"),
            base_dir=self.base_dir,
        )

    @property
    def start_date(self) -> str:
        return str(self.resolved["source"]["start_date"])

    def feature_sets(self) -> list[FeatureSetSpec]:
        """The listed specs, each with its column tags: its own (Python), the template's
        `privacy.feature_tags` for its name, and those inherited from the source's columns."""
        specs = [import_object(ref) for ref in self.resolved["features"]]
        declared = (self.resolved.get("privacy") or {}).get("feature_tags") or {}
        source = self.resolved.get("source") or {}
        source_tags = check_tags(source.get("columns_tags"), "source.columns_tags")
        out = []
        for spec in specs:
            tags = merge_tags(
                spec.tags,
                check_tags(declared.get(spec.name), f"privacy.feature_tags.{spec.name}"),
                inherited_tags(spec.features, source_tags),
            )
            out.append(dataclasses.replace(spec, tags=tags) if tags != dict(spec.tags) else spec)
        return out

    def privacy_policy(self) -> dict[str, str]:
        """Tag -> least role that sees it (`privacy.policy`; defaults fill the rest)."""
        return check_policy((self.resolved.get("privacy") or {}).get("policy"))

    @property
    def model_name(self) -> str:
        return str(self.resolved["model"]["registered_name"])

    def rules(self) -> tuple[LabelingRule, ...]:
        """The declared weak labeling rules, their functions imported."""
        return tuple(
            LabelingRule(
                name=str(r["name"]),
                function=import_object(str(r["function"])),
                params=dict(r.get("params") or {}),
                weight=None if r.get("weight") is None else float(r["weight"]),
            )
            for r in self.resolved.get("rules") or []
        )

    def program(self, version: str | None = None, **overrides: Any) -> Program:
        """The core's Program for this template (plus overrides, e.g. a smaller batch)."""
        doc = self.resolved
        source = doc["source"]
        program = Program(
            name=doc["name"],
            feature_set=doc["training_features"],
            labeling_feature_set=doc["labeling_features"],
            classes=tuple(str(c) for c in doc["labels"]["classes"]),
            holdout_source=f"{source['name']}_holdout_labels"
            if source.get("ground_truth")
            else None,
            strategy=doc["strategy"]["name"],
            strategy_options=dict(doc["strategy"].get("params") or {}),
            batch_size=int(doc["batch_size"]),
            label_budget=int(doc["label_budget"]),
            answers_per_task=int(doc["overlap"]),
            seed=int(doc["seed"]),
            estimator=doc["model"]["estimator"],
            model_params=dict(doc["model"].get("params") or {}),
            promotion_tolerance=float(doc["promotion"]["tolerance"]),
            instructions=str(doc["labels"].get("instructions", "")),
            template_version=version,
            auto_labels=AutoLabelSettings.from_mapping(doc.get("auto_labels")),
            rules=self.rules(),
            rules_weight=float(doc.get("rules_weight", DEFAULT_RULES_WEIGHT)),
            feedback_trust=float(doc.get("feedback_trust", DEFAULT_FEEDBACK_TRUST)),
            label_weights={str(k): float(v) for k, v in (doc.get("label_weights") or {}).items()},
        )
        return program.replace(**overrides) if overrides else program

    def stopping(self) -> dict[str, Any]:
        return dict(self.resolved["stopping"])

    def fingerprint(self) -> str:
        """Content hash of the resolved document and of every feature set definition it names
        (a changed transform behind the same import path is a new template version)."""
        payload: dict[str, Any] = {"template": self.resolved}
        try:
            specs = self.feature_sets()
            payload["feature_sets"] = {s.id: s.fingerprint for s in specs}
            # Tags declared in Python are part of the program's declared definition too (the
            # template's own tags are in the document); only added when there are any, so
            # untagged programs keep the fingerprints they were published with.
            if any(s.tags for s in specs):
                payload["feature_tags"] = {s.id: dict(s.tags) for s in specs}
        except Exception:  # noqa: BLE001 - an invalid template is fingerprinted by text only
            payload["feature_sets"] = None
        if self.resolved.get("rules"):  # a changed rule body is a new template version too
            try:
                payload["rules"] = [r.source for r in self.rules()]
            except Exception:  # noqa: BLE001 - as above
                payload["rules"] = None
        blob = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    # -- validation ------------------------------------------------------------------------

    def validate(self, check_data: bool = True) -> list[TemplateError]:
        """Every error of the template, each with its path. With `check_data`, the source is
        read to check the declared columns exist and the true labels fit the label set."""
        errors: list[TemplateError] = []

        def err(path: str, message: str) -> None:
            errors.append(TemplateError(path, message))

        doc = self.document
        for key in doc:
            if key not in TOP_LEVEL:
                err(str(key), f"unknown key.{closest(str(key), TOP_LEVEL)}")
        for key in ("name", "source", "features", "labels"):
            if key not in doc:
                err(key, "required")
        name = doc.get("name")
        if "name" in doc:
            try:
                check_name(name, "program name")
            except InvalidNameError as exc:
                err("name", str(exc))
        resolved = self.resolved
        classes = self._check_labels(resolved.get("labels"), err)
        specs = self._check_features(resolved, err)
        source = resolved.get("source")
        if isinstance(source, Mapping):
            before = len(errors)
            self._check_source(source, specs, err)
            if check_data and len(errors) == before:
                self._check_source_data(source, classes, err)
        elif "source" in doc:
            err("source", "expected a mapping")
        self._check_model(resolved.get("model"), err)
        self._check_strategy(resolved.get("strategy"), err)
        for key, low in (("batch_size", 1), ("overlap", 1), ("label_budget", 1), ("seed", 0)):
            value = resolved.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                err(key, f"expected an integer >= {low}, got {value!r}")
        self._check_stopping(resolved.get("stopping"), err)
        tolerance = (resolved.get("promotion") or {}).get("tolerance")
        if not isinstance(tolerance, int | float) or tolerance < 0:
            err("promotion.tolerance", f"expected a number >= 0, got {tolerance!r}")
        self._check_annotators(resolved.get("annotators"), err)
        for key, message in AutoLabelSettings.problems(
            resolved.get("auto_labels"), classes or None
        ):
            err(f"auto_labels.{key}" if key else "auto_labels", message)
        self._check_rules(resolved, err)
        self._check_privacy(resolved, specs, err)
        return errors

    def check(self, check_data: bool = True, where: str | None = None) -> ProgramTemplate:
        errors = self.validate(check_data)
        if errors:
            raise TemplateValidationError(where or f"template {self.name or '?'}", errors)
        return self

    @staticmethod
    def _check_labels(labels: Any, err) -> list[str]:  # noqa: ANN001
        if labels is None:
            return []
        if not isinstance(labels, Mapping):
            err("labels", "expected a mapping with classes and instructions")
            return []
        classes = labels.get("classes")
        if not isinstance(classes, list) or len(classes) < 2:
            err("labels.classes", f"expected a list of at least two labels, got {classes!r}")
            return []
        names = [str(c) for c in classes]
        if len(set(names)) != len(names):
            err("labels.classes", f"duplicate labels in {names}")
        if "instructions" in labels and not isinstance(labels["instructions"], str):
            err("labels.instructions", "expected text")
        return names

    @staticmethod
    def _check_features(doc: Mapping[str, Any], err) -> list[FeatureSetSpec]:  # noqa: ANN001
        refs = doc.get("features")
        specs: list[FeatureSetSpec] = []
        if refs is None:
            return specs
        if not isinstance(refs, list) or not refs:
            err("features", "expected a non-empty list of import paths ('module:SPEC')")
            return specs
        for i, ref in enumerate(refs):
            try:
                spec = import_object(str(ref))
            except FeaturePlatformError as exc:
                err(f"features[{i}]", str(exc))
                continue
            if not isinstance(spec, FeatureSetSpec):
                err(f"features[{i}]", f"{ref!r} is a {type(spec).__name__}, not a FeatureSetSpec")
                continue
            specs.append(spec)
        names = {s.name: s for s in specs}
        versions = {(s.name, s.version) for s in specs}
        if len(versions) != len(specs):
            err("features", "the same feature set version is listed twice")
        for key in ("training_features", "labeling_features"):
            ref = doc.get(key)
            try:
                fs_name, selector = parse_feature_set(str(ref))
            except FeaturePlatformError as exc:
                err(key, str(exc))
                continue
            if specs and fs_name not in names:
                err(key, f"feature set {fs_name!r} is not among features {sorted(names)}")
            aliases = doc.get("aliases") or {}
            if specs and selector.startswith("v") and (fs_name, selector) not in versions:
                if selector not in aliases:
                    err(key, f"version {fs_name}@{selector} is not among the listed features")
            elif specs and not selector.startswith("v") and selector not in aliases:
                err(key, f"alias {selector!r} is not set under aliases {sorted(aliases)}")
        for alias, version in (doc.get("aliases") or {}).items():
            if specs and not any(s.version == version for s in specs):
                err(f"aliases.{alias}", f"version {version!r} is not among the listed features")
        return specs

    @staticmethod
    def _check_source(source, specs, err) -> None:  # noqa: ANN001
        for key in source:
            if key not in SOURCE_KEYS:
                err(f"source.{key}", f"unknown key.{closest(str(key), SOURCE_KEYS)}")
        kind = source.get("kind")
        if kind not in SOURCE_KINDS:
            err("source.kind", f"expected one of {list(SOURCE_KINDS)}, got {kind!r}")
        needs = {
            "csv": ["path"],
            "parquet": ["path"],
            "sql": ["url"],
            "python": ["loader"],
        }.get(kind, [])
        for key in [*needs, "entity", "event_time", "start_date"]:
            if not source.get(key):
                err(f"source.{key}", "required")
        if not source.get("ground_truth"):
            # Every round scores its model on held-out samples' true labels (promotion, stopping).
            err(
                "source.ground_truth",
                "required: the column of true labels that each round's held-out evaluation reads",
            )
        if kind == "sql" and not (source.get("table") or source.get("query")):
            err("source.table", "a sql source needs a table or a query")
        try:
            check_name(source.get("name"), "source name")
        except InvalidNameError as exc:
            err("source.name", str(exc))
        if source.get("start_date"):
            try:
                dt.date.fromisoformat(str(source["start_date"]))
            except ValueError:
                err("source.start_date", f"expected YYYY-MM-DD, got {source['start_date']!r}")
        if source.get("end_date"):
            try:
                end = dt.date.fromisoformat(str(source["end_date"]))
                if source.get("start_date") and end <= dt.date.fromisoformat(
                    str(source["start_date"])
                ):
                    err("source.end_date", "must come after start_date")
            except ValueError:
                err("source.end_date", f"expected YYYY-MM-DD, got {source['end_date']!r}")
        if source.get("partitions", "daily") not in ARRIVAL_PARTITIONS:
            err(
                "source.partitions",
                f"expected one of {list(ARRIVAL_PARTITIONS)}, got {source.get('partitions')!r}",
            )
        try:  # before the data checks, which read the source through its spec
            check_tags(source.get("columns_tags"), "source.columns_tags")
        except PrivacyError as exc:
            err("source.columns_tags", str(exc))
        fraction = source.get("holdout_fraction", 0.2)
        if not isinstance(fraction, int | float) or not 0 < fraction < 1:
            err("source.holdout_fraction", f"expected a number in (0, 1), got {fraction!r}")
        for i, spec in enumerate(specs):
            if source.get("entity") and spec.entity != source.get("entity"):
                err(
                    f"features[{i}]",
                    f"{spec.id} is keyed by {spec.entity!r}, the source by "
                    f"{source.get('entity')!r}",
                )
            if source.get("name") and tuple(spec.sources) != (source.get("name"),):
                err(
                    f"features[{i}]",
                    f"{spec.id} reads source(s) {list(spec.sources)}, the program's source is "
                    f"named {source.get('name')!r}",
                )

    def _check_source_data(self, source, classes, err) -> None:  # noqa: ANN001
        """Read the source: the declared columns exist, the true labels fit the label set."""
        spec = self.source()
        try:
            frame = spec.read_raw()
        except Exception as exc:  # noqa: BLE001 - any failure to read is the template's error
            err("source", f"cannot read: {type(exc).__name__}: {exc}")
            return
        missing = [c for c in spec.required_columns() if c not in frame.columns]
        for column in missing:
            err(_column_path(source, column), f"column {column!r} is not in the source")
        for column in spec.columns_tags:
            if column not in frame.columns:
                err(f"source.columns_tags.{column}", f"column {column!r} is not in the source")
        truth = source.get("ground_truth")
        if truth and classes and truth not in missing:
            values = sorted(set(frame[truth].astype(str)) - set(classes))
            if values:
                err(
                    "labels.classes",
                    f"ground truth column {truth!r} holds labels not in the label set: "
                    f"{values[:10]}",
                )

    @staticmethod
    def _check_model(model: Any, err) -> None:  # noqa: ANN001
        if not isinstance(model, Mapping):
            err("model", "expected a mapping with estimator and params")
            return
        params = model.get("params") or {}
        if not isinstance(params, Mapping):
            err("model.params", "expected a mapping")
            return
        try:
            Program(
                feature_set="-",
                classes=("a", "b"),
                estimator=str(model.get("estimator")),
                model_params=dict(params),
            ).build_estimator()
        except EstimatorImportError as exc:
            err("model.estimator", str(exc))
        try:
            check_name(model.get("registered_name"), "registered model name")
        except InvalidNameError as exc:
            err("model.registered_name", str(exc))

    @staticmethod
    def _check_strategy(strategy: Any, err) -> None:  # noqa: ANN001
        from feature_platform.learning.strategies import STRATEGIES

        if not isinstance(strategy, Mapping):
            err("strategy", "expected a mapping with name and params")
            return
        name = strategy.get("name")
        if name not in STRATEGIES:
            err(
                "strategy.name",
                f"unknown strategy {name!r}.{closest(str(name), STRATEGIES)} "
                f"Known: {list(STRATEGIES)}",
            )
        for key in strategy.get("params") or {}:
            if key not in STRATEGY_OPTIONS:
                err(f"strategy.params.{key}", f"unknown option; known: {list(STRATEGY_OPTIONS)}")

    @staticmethod
    def _check_stopping(stopping: Any, err) -> None:  # noqa: ANN001
        from feature_platform.learning.stopping import StoppingRules

        if not isinstance(stopping, Mapping):
            err("stopping", "expected a mapping")
            return
        known = ("target_accuracy", "kappa_threshold", "kappa_window", "plateau_patience")
        for key in stopping:
            if key not in known:
                err(f"stopping.{key}", f"unknown rule.{closest(str(key), known)}")
        try:
            StoppingRules(**{k: v for k, v in stopping.items() if k in known})
        except (FeaturePlatformError, TypeError) as exc:
            err("stopping", str(exc))

    @staticmethod
    def _check_privacy(doc: Mapping[str, Any], specs: list[FeatureSetSpec], err) -> None:  # noqa: ANN001
        """`privacy.feature_tags` name listed feature sets and their features; the policy's
        roles exist (`source.columns_tags` is checked with the source)."""
        privacy = doc.get("privacy")
        if privacy is None:
            return
        if not isinstance(privacy, Mapping):
            err("privacy", "expected a mapping with feature_tags and policy")
            return
        for key in privacy:
            if key not in ("feature_tags", "policy"):
                err(f"privacy.{key}", "unknown key; known: ['feature_tags', 'policy']")
        try:
            check_policy(privacy.get("policy"))
        except PrivacyError as exc:
            err("privacy.policy", str(exc))
        declared = privacy.get("feature_tags") or {}
        if not isinstance(declared, Mapping):
            err("privacy.feature_tags", "expected a mapping of feature set name -> column tags")
            return
        by_name: dict[str, set[str]] = {}
        for spec in specs:
            by_name.setdefault(spec.name, set()).update(spec.features)
        for name, tags in declared.items():
            path = f"privacy.feature_tags.{name}"
            try:
                checked = check_tags(tags, path)
            except PrivacyError as exc:
                err(path, str(exc))
                continue
            if specs and name not in by_name:
                err(path, f"no listed feature set is called {name!r}; listed: {sorted(by_name)}")
                continue
            for column in checked:
                if specs and column not in by_name[name]:
                    err(f"{path}.{column}", f"{name!r} has no feature {column!r}")

    @staticmethod
    def _check_annotators(annotators: Any, err) -> None:  # noqa: ANN001
        if not isinstance(annotators, Mapping):
            err("annotators", "expected a mapping with pool and roles")
            return
        pool = annotators.get("pool") or []
        if not isinstance(pool, list):
            err("annotators.pool", "expected a list of names")
            pool = []
        for i, person in enumerate(pool):
            try:
                check_name(person, "annotator name")
            except InvalidNameError as exc:
                err(f"annotators.pool[{i}]", str(exc))
        for person, role in (annotators.get("roles") or {}).items():
            try:
                check_name(person, "annotator name")
            except InvalidNameError as exc:
                err(f"annotators.roles.{person}", str(exc))
            if role not in ROLES:
                err(f"annotators.roles.{person}", f"unknown role {role!r}; known: {list(ROLES)}")

    @staticmethod
    def _check_rules(doc: Mapping[str, Any], err) -> None:  # noqa: ANN001
        rules = doc.get("rules")
        if rules is not None and not isinstance(rules, list):
            err("rules", "expected a list of {name, function, params, weight}")
            rules = []
        names: set[str] = set()
        for i, rule in enumerate(rules or []):
            where = f"rules[{i}]"
            if not isinstance(rule, Mapping):
                err(where, "expected a mapping with name, function, params and weight")
                continue
            for key in rule:
                if key not in ("name", "function", "params", "weight"):
                    err(f"{where}.{key}", "unknown key; known: name, function, params, weight")
            try:
                check_name(rule.get("name"), "rule name")
            except InvalidNameError as exc:
                err(f"{where}.name", str(exc))
            if rule.get("name") in names:
                err(f"{where}.name", f"rule {rule.get('name')!r} is declared twice")
            names.add(rule.get("name"))
            try:
                function = import_object(str(rule.get("function")))
                if not callable(function):
                    err(f"{where}.function", f"{rule.get('function')!r} is not a function")
            except FeaturePlatformError as exc:
                err(f"{where}.function", str(exc))
            if not isinstance(rule.get("params") or {}, Mapping):
                err(f"{where}.params", "expected a mapping")
            _check_weight(rule.get("weight"), f"{where}.weight", err, optional=True)
        for key in ("rules_weight", "feedback_trust"):
            _check_weight(doc.get(key), key, err, optional=True)
        weights = doc.get("label_weights") or {}
        if not isinstance(weights, Mapping):
            err("label_weights", "expected a mapping of source kind or source to weight")
            weights = {}
        for key, weight in weights.items():
            kind = str(key).split(":", 1)[0]
            if key not in SOURCE_KINDS_OF_LABELS and not (
                kind in SOURCE_KINDS_OF_LABELS and kind != "human" and ":" in str(key)
            ):
                err(
                    f"label_weights.{key}",
                    f"unknown label source; known kinds: {list(SOURCE_KINDS_OF_LABELS)} (or an "
                    f"exact source like 'feedback:<system>')",
                )
            _check_weight(weight, f"label_weights.{key}", err)


def _check_weight(value: Any, path: str, err, optional: bool = False) -> None:  # noqa: ANN001
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e6:
        err(path, f"expected a number > 0, got {value!r}")


def _column_path(source: Mapping[str, Any], column: str) -> str:
    for key in ("entity", "event_time", "created_time", "ground_truth", "split_column"):
        if source.get(key) == column:
            return f"source.{key}"
    return f"source.columns.{column}"
