"""Auto-labels: a scorer's confident predictions become labels of source kind `model`.

Routine samples get labeled by the model while people keep the samples that matter. The
scorer (`auto_labels.scorer`, `learning/auto_label_scorers.py`) is the champion by default,
or label spreading over a kNN graph of labeled, pool and held-out samples; either one scores
the pool and the held-out split the same way, and everything below applies to both:

1. **Calibration** (`calibrate_threshold`): on the program's held-out split, the lowest
   confidence threshold whose precision is at least `target_precision` by a one-sided
   Clopper-Pearson lower bound at the program's `confidence` (not the raw point estimate).
   Predictions of high-stakes classes are left out (they are never auto-labeled). If no
   threshold qualifies, auto-labeling is off for the round, and the record says why (with
   zero errors, a 0.99 bound at 95 % needs at least 299 held-out predictions above it).
2. **Selection** (`select_auto_labels`): unlabeled pool samples at or above the threshold whose
   predicted class is not high-stakes, at most `max_share` of the round's unlabeled pool,
   most confident first within an equal quota per predicted class. They are recorded in
   `labeling/machine_labels.py` (never in the queue), with the model version, feature
   version, threshold and bound as provenance.
3. **Review** (`review_specs`): a seeded `review_fraction` of each round's auto-labels become
   tasks of the next round's batch (strategy `auto_label_review`). People answer them like
   any task; their answer is a human label. `apply_review_verdicts` reads the answers: the
   same label confirms the auto-label, another withdraws it (the person's label stands).
4. **Measured precision and adaptation** (`auto_label_round`): confirmed / reviewed, with a
   Clopper-Pearson interval. When the reviews since the previous round confirm fewer than
   `target_precision` of the auto-labels, the threshold is raised one step (halfway to 1
   from where it was: `1 - (1 - calibrated) / 2**steps`); when the lower bound over all
   reviews reaches the target, it comes back one step towards the calibrated one. (A rule on
   the lower bound of the reviews alone would raise it every round: ten confirmations out of
   ten bound precision only at 0.74.) Each round's decision is a row of `auto_label_rounds`.

Nothing here is counted as a human label: auto-labels are not tasks, so queue counts and
label budgets never see them; review answers are people's answers and count as such.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from scipy.stats import beta

from feature_platform.feature_store import FeatureStore
from feature_platform.governance.identity import Actor, system_actor
from feature_platform.labeling.machine_labels import MODEL, MachineLabel
from feature_platform.labeling.queue import ANSWERED, RESOLVED, TaskSpec
from feature_platform.learning.auto_label_scorers import CHAMPION
from feature_platform.programs.model import AutoLabelSettings, Program
from feature_platform.store.db import as_utc, create_tables, metadata, utcnow, write_transaction

REVIEW_STRATEGY = "auto_label_review"
ON, OFF = "on", "off"

auto_label_rounds = sa.Table(
    "auto_label_rounds",
    metadata,
    sa.Column("round", sa.String(100), primary_key=True),
    sa.Column("status", sa.String(10), nullable=False),  # on | off
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("model_version", sa.String(200), nullable=False),
    sa.Column("feature_version", sa.String(260), nullable=False),
    sa.Column("target_precision", sa.Float, nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("calibrated_threshold", sa.Float),  # NULL: no threshold reached the target
    sa.Column("threshold", sa.Float),  # after adaptation to the reviews
    sa.Column("raise_steps", sa.Integer, nullable=False),
    sa.Column("holdout_precision_bound", sa.Float),
    sa.Column("holdout_accepted", sa.Integer, nullable=False),
    sa.Column("holdout_evaluated", sa.Integer, nullable=False),
    sa.Column("pool", sa.Integer, nullable=False),
    sa.Column("eligible", sa.Integer, nullable=False),
    sa.Column("cap", sa.Integer, nullable=False),
    sa.Column("labeled", sa.Integer, nullable=False),
    sa.Column("reviewed", sa.Integer, nullable=False),  # every review verdict so far
    sa.Column("confirmed", sa.Integer, nullable=False),
    sa.Column("measured_lower", sa.Float),
    sa.Column("measured_upper", sa.Float),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # What proposed the labels (learning/auto_label_scorers.py) and its parameters (JSON).
    sa.Column("scorer", sa.String(40), nullable=False, server_default=CHAMPION),
    sa.Column("scorer_params", sa.Text, nullable=False, server_default="{}"),
)

ROUND_COLUMNS = [c.name for c in auto_label_rounds.columns]


# -- precision bounds --------------------------------------------------------------------------


def precision_lower_bound(correct: int, total: int, confidence: float) -> float:
    """One-sided Clopper-Pearson lower bound of a proportion at `confidence` (0 with no data)."""
    if total <= 0 or correct <= 0:
        return 0.0
    return float(beta.ppf(1.0 - confidence, correct, total - correct + 1))


def precision_upper_bound(correct: int, total: int, confidence: float) -> float:
    """One-sided Clopper-Pearson upper bound (1 with no data)."""
    if total <= 0 or correct >= total:
        return 1.0
    return float(beta.ppf(confidence, correct + 1, total - correct))


def predictions_needed(target: float, confidence: float) -> int:
    """How many predictions, all correct, bound precision at `target`: (1-c)^(1/n) >= t."""
    return math.ceil(math.log(1.0 - confidence) / math.log(target))


# -- 1. calibration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    threshold: float | None  # None: no threshold reaches the target
    precision_bound: float | None  # the lower bound at the threshold (or the best one found)
    accepted: int  # held-out predictions at or above the threshold (or the best one)
    correct: int
    evaluated: int  # held-out predictions considered (high-stakes classes left out)
    reason: str


def calibrate_threshold(
    confidence: Sequence[float] | np.ndarray,
    predicted: Sequence[str] | np.ndarray,
    truth: Sequence[str] | np.ndarray,
    *,
    target: float = 0.99,
    level: float = 0.95,
    high_stakes: Sequence[str] = (),
) -> Calibration:
    """The lowest threshold t such that, among held-out predictions with confidence >= t, the
    one-sided Clopper-Pearson lower bound (at `level`) of the share predicted correctly is at
    least `target`. Predictions of `high_stakes` classes are not considered."""
    scores = np.asarray(confidence, dtype=float)
    predicted = np.asarray(predicted).astype(str)
    right = predicted == np.asarray(truth).astype(str)
    keep = ~np.isin(predicted, [str(c) for c in high_stakes]) & np.isfinite(scores)
    scores, right = scores[keep], right[keep]
    evaluated = len(scores)
    needed = predictions_needed(target, level)
    if evaluated == 0:
        return Calibration(None, None, 0, 0, 0, "no held-out prediction to calibrate on")
    order = np.argsort(-scores, kind="stable")
    scores, right = scores[order], right[order]
    correct = np.cumsum(right)
    count = np.arange(1, evaluated + 1)
    # A threshold t accepts every prediction >= t: only the last of equal scores is a cut.
    cuts = np.r_[scores[1:] != scores[:-1], True]
    ks, ns, ts = correct[cuts], count[cuts], scores[cuts]
    bounds = np.where(ks > 0, beta.ppf(1.0 - level, np.maximum(ks, 1), ns - ks + 1), 0.0)
    good = np.flatnonzero(bounds >= target)
    if len(good):
        i = good[-1]  # the lowest qualifying threshold accepts the most predictions
        return Calibration(
            float(ts[i]),
            float(bounds[i]),
            int(ns[i]),
            int(ks[i]),
            evaluated,
            f"p >= {ts[i]:.4f}: {ks[i]}/{ns[i]} held-out predictions right, precision >= "
            f"{bounds[i]:.4f} at {level:.0%} confidence (target {target})",
        )
    best = int(np.argmax(bounds))
    return Calibration(
        None,
        float(bounds[best]),
        int(ns[best]),
        int(ks[best]),
        evaluated,
        f"off: no threshold bounds held-out precision at {target} ({level:.0%} confidence); "
        f"the best is {bounds[best]:.4f} at p >= {ts[best]:.4f} ({ks[best]}/{ns[best]} right "
        f"of {evaluated} held-out predictions); even with no error it takes {needed} "
        f"predictions above the threshold",
    )


def adapted_threshold(calibrated: float, raise_steps: int) -> float:
    """The calibrated threshold raised `raise_steps` times, each halving the distance to 1."""
    return 1.0 - (1.0 - calibrated) / 2**raise_steps


# -- 2. selection ------------------------------------------------------------------------------


def eligible_auto_labels(
    pool: pd.DataFrame, threshold: float, high_stakes: Sequence[str]
) -> pd.DataFrame:
    """Rows of `pool` (sample_key, predicted, confidence) at or above `threshold` whose
    predicted class is not high-stakes, most confident first (ties by key)."""
    if pool.empty or "confidence" not in pool:
        return pool.iloc[:0]
    eligible = pool[
        (pool["confidence"] >= threshold)
        & ~pool["predicted"].astype(str).isin([str(c) for c in high_stakes])
    ]
    ordered = eligible.assign(_key=eligible["sample_key"].astype(str)).sort_values(
        ["confidence", "_key"], ascending=[False, True], kind="stable"
    )
    return ordered.drop(columns="_key")


def select_auto_labels(
    pool: pd.DataFrame, threshold: float, high_stakes: Sequence[str], cap: int
) -> pd.DataFrame:
    """The eligible rows (`eligible_auto_labels`) to auto-label, at most `cap`, spread over
    the predicted classes: each class gets at most `cap // classes` (at least 1) of its most
    confident, then the most confident of those are kept. Most-confident-first over all
    classes tilts the training set towards the easy classes: on digits (margin sampling, 6
    seeds, arrays) it made the model need 120 human labels instead of 100 to reach 95 % of
    full-pool accuracy; with the quota it needed 100, as without auto-labels."""
    eligible = eligible_auto_labels(pool, threshold, high_stakes)
    if eligible.empty or cap <= 0:
        return eligible.iloc[:0]
    quota = max(1, cap // eligible["predicted"].astype(str).nunique())
    spread = eligible.groupby(eligible["predicted"].astype(str), sort=False).head(quota)
    return spread.head(cap)  # `head` per group keeps the confidence order


# -- 3. review ---------------------------------------------------------------------------------


def review_reason(confidence: float) -> str:
    """A review task's reason. Blind: the model's label is neither said nor offered as a top
    class, so the reviewer answers from the sample alone and the measured precision is not
    pulled towards the model's answer (anchoring)."""
    return (
        f"review: the model labeled this at p={confidence:.3f}; label it yourself "
        f"(its answer is hidden so it does not steer yours)"
    )


def review_specs(
    store: FeatureStore,
    program: Program,
    round_name: str,
    previous_round: str | None,
    feature_version: str,
    model_version: str | None,
) -> list[TaskSpec]:
    """Review tasks for a seeded `review_fraction` (rounded up) of the auto-labels made in
    `previous_round` that are still in force and not yet in the queue."""
    settings = program.auto_labels
    if not settings.enabled or previous_round is None or settings.review_fraction <= 0:
        return []
    made = store.machine_labels.labels([MODEL])
    made = made[made["round"] == previous_round]
    made = made[~made["sample_key"].isin(store.queue.sample_keys())]
    if made.empty:
        return []
    count = min(len(made), math.ceil(settings.review_fraction * len(made)))
    rng = np.random.default_rng([program.seed, _round_seed(round_name)])
    chosen = made.iloc[np.sort(rng.choice(len(made), size=count, replace=False))]
    return [
        TaskSpec(
            sample_key=str(row.sample_key),
            strategy=REVIEW_STRATEGY,
            score=float(row.confidence),
            reason=review_reason(float(row.confidence)),
            feature_version=feature_version,
            model_version=model_version,
            top_classes=[],
        )
        for row in chosen.itertuples(index=False)
    ]


def _round_seed(round_name: str) -> int:
    digits = "".join(ch for ch in round_name if ch.isdigit())
    return int(digits) if digits else 0


@dataclass(frozen=True)
class Verdict:
    sample_key: str
    auto_label: str
    human_label: str
    label_round: str | None  # the round that made the auto-label
    confirmed: bool


def review_verdicts(store: FeatureStore) -> list[Verdict]:
    """Every answered review task's verdict: the people's label (the majority of their
    effective answers) against the model's."""
    reviewed = {
        t.id: t.sample_key
        for state in (ANSWERED, RESOLVED)
        for t in store.queue.tasks(state=state)
        if t.strategy == REVIEW_STRATEGY
    }
    if not reviewed:
        return []
    answers = store.queue.answers()
    answers = answers[answers["task_id"].isin(set(reviewed))]
    made = store.machine_labels.labels([MODEL], include_withdrawn=True)
    made = made.drop_duplicates("sample_key", keep="first").set_index("sample_key")
    verdicts = []
    for sample_key, group in answers.groupby("sample_key", sort=True):
        if sample_key not in made.index:
            continue
        counts = group["label"].astype(str).value_counts()
        top = sorted(counts[counts == counts.max()].index)
        machine = str(made.loc[sample_key, "label"])
        # A tie among people is no confirmation: the verdict names another label of the tie.
        human = top[0] if len(top) == 1 else next(label for label in top if label != machine)
        verdicts.append(
            Verdict(
                str(sample_key),
                machine,
                human,
                made.loc[sample_key, "round"],
                human == machine,
            )
        )
    return verdicts


def apply_review_verdicts(store: FeatureStore, actor: Actor | str | None = None) -> list[Verdict]:
    """Withdraw every auto-label that people's review rejected (idempotent), all in one
    transaction (all or nothing); their own label stands, as the review task's answer.
    Returns every verdict so far."""
    actor = actor if actor is not None else system_actor()
    verdicts = review_verdicts(store)
    made = store.machine_labels.labels([MODEL])
    rejected = {v.sample_key: v for v in verdicts if not v.confirmed}
    withdrawn = made[made["sample_key"].isin(set(rejected))]
    if withdrawn.empty:
        return verdicts
    with write_transaction(store.engine) as conn:
        for row in withdrawn.itertuples(index=False):
            verdict = rejected[row.sample_key]
            store.machine_labels.withdraw(
                [int(row.label_id)],
                f"review: people labeled {row.sample_key} '{verdict.human_label}', the model "
                f"auto-labeled it '{verdict.auto_label}'",
                actor=actor,
                conn=conn,
            )
    return verdicts


# -- 4. the round step -------------------------------------------------------------------------


@dataclass(frozen=True)
class AutoLabelRound:
    round: str
    status: str  # on | off
    reason: str
    model_version: str
    feature_version: str
    target_precision: float
    confidence: float
    calibrated_threshold: float | None
    threshold: float | None
    raise_steps: int
    holdout_precision_bound: float | None
    holdout_accepted: int
    holdout_evaluated: int
    pool: int
    eligible: int
    cap: int
    labeled: int
    reviewed: int
    confirmed: int
    measured_lower: float | None
    measured_upper: float | None
    created_at: datetime
    scorer: str = CHAMPION
    scorer_params: Mapping[str, Any] | None = None

    @property
    def measured_precision(self) -> float | None:
        return self.confirmed / self.reviewed if self.reviewed else None

    def metrics(self) -> dict[str, float]:
        """What MLflow records with the round's model (absent values left out)."""
        values = {
            "auto_label_threshold": self.threshold,
            "auto_label_calibrated_threshold": self.calibrated_threshold,
            "auto_label_holdout_precision_bound": self.holdout_precision_bound,
            "auto_labels": float(self.labeled),
            "auto_label_raise_steps": float(self.raise_steps),
            "auto_label_reviewed": float(self.reviewed),
            "auto_label_measured_precision": self.measured_precision,
            "auto_label_measured_lower": self.measured_lower,
        }
        return {k: float(v) for k, v in values.items() if v is not None}


class AutoLabelRounds:
    """The per-round record of thresholds, counts and measured precision."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        create_tables(engine, auto_label_rounds)

    def get(self, round_name: str) -> AutoLabelRound | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(auto_label_rounds).where(auto_label_rounds.c.round == round_name)
            ).first()
        return _record(row) if row is not None else None

    def all(self) -> list[AutoLabelRound]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(auto_label_rounds).order_by(
                    auto_label_rounds.c.created_at, auto_label_rounds.c.round
                )
            ).all()
        return [_record(row) for row in rows]

    def add(self, record: AutoLabelRound) -> AutoLabelRound:
        """Insert the record unless the round has one already (a retried round keeps it)."""
        with write_transaction(self.engine) as conn:
            found = conn.execute(
                sa.select(auto_label_rounds.c.round).where(
                    auto_label_rounds.c.round == record.round
                )
            ).first()
            if found is None:
                values = asdict(record)
                values["scorer_params"] = json.dumps(values["scorer_params"] or {}, sort_keys=True)
                conn.execute(auto_label_rounds.insert().values(**values))
        return self.get(record.round) or record


def _record(row: sa.Row) -> AutoLabelRound:
    values = dict(row._mapping)
    values["created_at"] = as_utc(values["created_at"])
    values["scorer_params"] = json.loads(values["scorer_params"] or "{}")
    return AutoLabelRound(**values)


def adapt_raise_steps(
    settings: AutoLabelSettings,
    previous: AutoLabelRound | None,
    reviewed: int,
    confirmed: int,
) -> tuple[int, str]:
    """The next round's raise steps (see `adapted_threshold`) and why they changed, from the
    review verdicts so far (`reviewed`, `confirmed`) and the previous round's record: one up
    when the reviews since then confirm less than the target share, one down (to 0) when
    every review so far bounds precision at the target."""
    lower = precision_lower_bound(confirmed, reviewed, settings.confidence)
    steps = previous.raise_steps if previous else 0
    new_reviewed = reviewed - (previous.reviewed if previous else 0)
    new_confirmed = confirmed - (previous.confirmed if previous else 0)
    if new_reviewed > 0 and new_confirmed / new_reviewed < settings.target_precision:
        return steps + 1, (
            f"raised: {new_confirmed} of {new_reviewed} new reviews confirmed the auto-label "
            f"(below {settings.target_precision})"
        )
    if steps > 0 and reviewed and lower >= settings.target_precision:
        return steps - 1, (
            f"lowered towards the calibrated threshold: reviews bound precision at "
            f"{lower:.4f} >= {settings.target_precision}"
        )
    return steps, ""


def auto_label_round(
    store: FeatureStore,
    program: Program,
    round_name: str,
    *,
    model_version: str,
    feature_version: str,
    pool: pd.DataFrame,
    holdout_proba: np.ndarray,
    holdout_truth: Sequence[str] | np.ndarray,
    scorer: str = CHAMPION,
    scorer_params: Mapping[str, Any] | None = None,
    scorer_provenance: Mapping[str, Any] | None = None,
    actor: Actor | str | None = None,
    now: datetime | None = None,
) -> AutoLabelRound:
    """One round's auto-labels: apply the review verdicts so far, adapt the threshold to
    them, calibrate it on the held-out split (`holdout_proba` over `program.classes`,
    `holdout_truth`), label the most confident eligible samples of the unlabeled `pool` (as
    built by `rounds.candidate_pool`: sample_key, predicted, confidence) and record the
    round. The pool and the held-out split are scored by the same `scorer` (the champion
    `model_version` by default; `learning/auto_label_scorers.py`), whose name, parameters
    and `scorer_provenance` go into every label's provenance and the round's record.
    Re-running a recorded round returns its record."""
    settings = program.auto_labels
    actor = actor if actor is not None else system_actor()
    rounds = AutoLabelRounds(store.engine)
    done = rounds.get(round_name)
    if done is not None:
        return done
    verdicts = apply_review_verdicts(store, actor)
    reviewed, confirmed = len(verdicts), sum(v.confirmed for v in verdicts)
    lower = precision_lower_bound(confirmed, reviewed, settings.confidence)
    upper = precision_upper_bound(confirmed, reviewed, settings.confidence)
    history = rounds.all()
    previous = history[-1] if history else None
    steps, adaptation = adapt_raise_steps(settings, previous, reviewed, confirmed)

    classes = np.asarray(program.classes)
    proba = np.asarray(holdout_proba, dtype=float)
    calibration = calibrate_threshold(
        proba.max(axis=1) if len(proba) else [],
        classes[proba.argmax(axis=1)] if len(proba) else [],
        holdout_truth,
        target=settings.target_precision,
        level=settings.confidence,
        high_stakes=settings.high_stakes,
    )
    # Samples already auto-labeled (in force or withdrawn) are not labeled again.
    before = set(store.machine_labels.labels([MODEL], include_withdrawn=True)["sample_key"])
    candidates = pool[~pool["sample_key"].astype(str).isin(before)] if len(pool) else pool
    cap = math.floor(settings.max_share * len(candidates))
    threshold = (
        adapted_threshold(calibration.threshold, steps)
        if calibration.threshold is not None
        else None
    )
    chosen = (
        select_auto_labels(candidates, threshold, settings.high_stakes, cap)
        if threshold is not None
        else candidates.iloc[:0]
    )
    eligible = (
        len(eligible_auto_labels(candidates, threshold, settings.high_stakes))
        if threshold is not None
        else 0
    )
    reason = calibration.reason + (f"; {adaptation}" if adaptation else "")
    if threshold is not None:
        reason += f"; threshold {threshold:.4f}, {len(chosen)} of {eligible} eligible (cap {cap})"
    provenance: dict[str, Any] = {
        "model_version": model_version,
        "feature_version": feature_version,
        "threshold": threshold,
        "calibrated_threshold": calibration.threshold,
        "holdout_precision_bound": calibration.precision_bound,
        "target_precision": settings.target_precision,
        "confidence": settings.confidence,
        "round": round_name,
        "program": program.name,
        "scorer": scorer,
        "scorer_params": dict(scorer_params or {}),
        **dict(scorer_provenance or {}),
    }
    source = (
        f"{MODEL}:{model_version}" if scorer == CHAMPION else f"{MODEL}:{scorer}:{model_version}"
    )
    if len(chosen):
        store.machine_labels.record(
            [
                MachineLabel(
                    sample_key=str(row.sample_key),
                    label=str(row.predicted),
                    source_kind=MODEL,
                    source=source,
                    event_id=str(row.sample_key),
                    confidence=float(row.confidence),
                    round=round_name,
                    provenance=provenance,
                )
                for row in chosen.itertuples(index=False)
            ],
            actor=actor,
        )
    return rounds.add(
        AutoLabelRound(
            round=round_name,
            status=ON if threshold is not None else OFF,
            reason=reason,
            model_version=model_version,
            feature_version=feature_version,
            target_precision=settings.target_precision,
            confidence=settings.confidence,
            calibrated_threshold=calibration.threshold,
            threshold=threshold,
            raise_steps=steps,
            holdout_precision_bound=calibration.precision_bound,
            holdout_accepted=calibration.accepted,
            holdout_evaluated=calibration.evaluated,
            pool=len(candidates),
            eligible=eligible,
            cap=cap,
            labeled=len(chosen),
            reviewed=reviewed,
            confirmed=confirmed,
            measured_lower=lower if reviewed else None,
            measured_upper=upper if reviewed else None,
            created_at=now or utcnow(),
            scorer=scorer,
            scorer_params=dict(scorer_params or {}),
        )
    )
