"""Labeling operations metrics: queue status, throughput, turnaround and lead time per round.

- throughput: answers per hour of wall-clock time from the round's batch creation to its last
  answer, and answers per annotator-hour of recorded working time (`time_spent_s`);
- turnaround: per task, from creation to the answer that completed it;
- lead time: per label, from task creation until a model trained on a snapshot holding that
  label was registered. Registration happens outside labeling (MLflow), so the caller passes
  the registration time per label snapshot id (or per round).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from feature_platform.errors import InvalidArgumentError
from feature_platform.labeling.label_store import LabelStore
from feature_platform.labeling.queue import Lease, TaskQueue
from feature_platform.store.db import utcnow


@dataclass(frozen=True)
class QueueStatus:
    counts: dict[str, int]  # tasks per state
    live_leases: int
    expired_leases: int  # expired but not yet requeued (the sensor will)
    oldest_lease: Lease | None
    per_annotator: pd.DataFrame  # annotator, leased, answers, answers_24h, median_time_spent_s


def queue_status(
    queue: TaskQueue, round_key: str | None = None, now: datetime | None = None
) -> QueueStatus:
    now = now or utcnow()
    round_tasks = {t.id for t in queue.tasks(round_key)} if round_key is not None else None

    def in_scope(lease: Lease) -> bool:
        return round_tasks is None or lease.task_id in round_tasks

    live = [lease for lease in queue.leases(now=now) if in_scope(lease)]
    expired = [lease for lease in queue.leases(now=now, expired=True) if in_scope(lease)]
    answers = queue.answers(round_key)
    names = sorted(set(answers["annotator"]) | {lease.annotator for lease in live})
    recent = answers[answers["answered_at"] >= pd.Timestamp(now - timedelta(hours=24))]
    per_annotator = pd.DataFrame(
        {
            "annotator": names,
            "leased": [sum(lease.annotator == n for lease in live) for n in names],
            "answers": [int((answers["annotator"] == n).sum()) for n in names],
            "answers_24h": [int((recent["annotator"] == n).sum()) for n in names],
            "median_time_spent_s": [
                float(answers.loc[answers["annotator"] == n, "time_spent_s"].astype(float).median())
                for n in names
            ],
        }
    )
    return QueueStatus(
        counts=queue.counts(round_key),
        live_leases=len(live),
        expired_leases=len(expired),
        oldest_lease=live[0] if live else None,
        per_annotator=per_annotator,
    )


def turnaround(queue: TaskQueue, round_key: str | None = None) -> pd.DataFrame:
    """Per complete task: created_at, completed_at (the answer that filled it), seconds."""
    columns = ["task_id", "round", "created_at", "completed_at", "turnaround_s"]
    answers = queue.answers(round_key)
    if answers.empty:
        return pd.DataFrame(columns=columns)
    needed = {t.id: t.answers_needed for t in queue.tasks(round_key)}
    ordered = answers.sort_values(["task_id", "answered_at", "answer_id"])
    ordered = ordered.assign(nth=ordered.groupby("task_id").cumcount() + 1)
    filled = ordered[ordered["nth"] == ordered["task_id"].map(needed)]
    frame = pd.DataFrame(
        {
            "task_id": filled["task_id"],
            "round": filled["round"],
            "created_at": filled["task_created_at"],
            "completed_at": filled["answered_at"],
        }
    )
    frame["turnaround_s"] = (frame["completed_at"] - frame["created_at"]).dt.total_seconds()
    return frame.reset_index(drop=True)[columns]


def round_metrics(queue: TaskQueue) -> pd.DataFrame:
    """One row per round: tasks, complete tasks, answers, annotators, throughput (answers per
    hour, and per annotator-hour of recorded work), turnaround median and 90th percentile."""
    answers = queue.answers()
    times = turnaround(queue)
    rows = []
    for round_key in queue.rounds():
        tasks = queue.tasks(round_key)
        mine = answers[answers["round"] == round_key]
        done = times[times["round"] == round_key]["turnaround_s"]
        started = min(t.created_at for t in tasks)
        hours = (
            (mine["answered_at"].max() - pd.Timestamp(started)).total_seconds() / 3600
            if len(mine)
            else float("nan")
        )
        worked_hours = mine["time_spent_s"].astype(float).sum() / 3600
        rows.append(
            {
                "round": round_key,
                "tasks": len(tasks),
                "complete_tasks": int(len(done)),
                "answers": int(len(mine)),
                "annotators": int(mine["annotator"].nunique()),
                "answers_per_hour": len(mine) / hours if hours and hours > 0 else float("nan"),
                "answers_per_annotator_hour": len(mine) / worked_hours
                if worked_hours > 0
                else float("nan"),
                "turnaround_median_s": float(done.median()) if len(done) else float("nan"),
                "turnaround_p90_s": float(np.percentile(done, 90)) if len(done) else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def lead_times(
    queue: TaskQueue,
    labels: LabelStore,
    registered_at: Mapping[str, datetime],
    by: str = "snapshot",
) -> pd.DataFrame:
    """Per labeled sample: when its task was created, when the first model trained with its
    label was registered, and the lead time between.

    `registered_at` maps label snapshot ids (by="snapshot") or round keys (by="round") to the
    time the model trained on it was registered. With rounds, a label counts as trained on by
    the first registered round at or after its own (a round's model sees all earlier labels).
    Samples whose label reached no registered model are left out.
    """
    columns = ["sample_key", "round", "created_at", "registered_at", "via", "lead_time_s"]
    tasks = pd.DataFrame(
        [(t.sample_key, t.round, t.created_at) for t in queue.tasks()],
        columns=["sample_key", "round", "created_at"],
    )
    if tasks.empty or not registered_at:
        return pd.DataFrame(columns=columns)
    tasks = tasks.sort_values("created_at").drop_duplicates("sample_key", keep="first")
    if by == "snapshot":
        first: dict[str, tuple[datetime, str]] = {}
        for snapshot_id, when in registered_at.items():
            # People's labels only: a sample whose snapshot label came from a rule, model or
            # feedback alone has not had its task's answer trained on yet.
            for key in labels.get(snapshot_id).human_labels["sample_key"]:
                if key not in first or when < first[key][0]:
                    first[key] = (when, snapshot_id)
        tasks = tasks[tasks["sample_key"].isin(first)]
        tasks = tasks.assign(
            registered_at=tasks["sample_key"].map(lambda k: first[k][0]),
            via=tasks["sample_key"].map(lambda k: first[k][1]),
        )
    elif by == "round":
        ordered = sorted(registered_at.items())

        def first_round(round_key: str) -> tuple[datetime, str] | None:
            later = [(when, r) for r, when in ordered if r >= round_key]
            return min(later) if later else None

        found = tasks["round"].map(first_round)
        tasks = tasks[found.notna()]
        found = found[found.notna()]
        tasks = tasks.assign(registered_at=found.map(lambda f: f[0]), via=found.map(lambda f: f[1]))
    else:
        raise InvalidArgumentError(f"by must be 'snapshot' or 'round', got {by!r}.")
    if tasks.empty:
        return pd.DataFrame(columns=columns)
    tasks["registered_at"] = pd.to_datetime(tasks["registered_at"], utc=True)
    tasks["created_at"] = pd.to_datetime(tasks["created_at"], utc=True)
    tasks["lead_time_s"] = (tasks["registered_at"] - tasks["created_at"]).dt.total_seconds()
    return tasks.sort_values(["round", "sample_key"], ignore_index=True)[columns]


def lead_time_by_round(lead: pd.DataFrame) -> pd.DataFrame:
    """Median, 90th percentile and maximum lead time (seconds) per round of creation."""
    grouped = lead.groupby("round")["lead_time_s"]
    return pd.DataFrame(
        {
            "labels": grouped.size(),
            "lead_time_median_s": grouped.median(),
            "lead_time_p90_s": grouped.quantile(0.9),
            "lead_time_max_s": grouped.max(),
        }
    ).reset_index()
