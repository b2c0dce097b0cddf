"""Turning raw answers into one label per sample, deterministically."""

from __future__ import annotations

import pandas as pd

LABEL_COLUMNS = ["sample_key", "label", "n_answers", "agreement", "labeled_at"]


def majority_vote(answers: pd.DataFrame) -> pd.DataFrame:
    """One label per sample: the most frequent answer.

    Tie-break (documented, replayable): among tied labels, the one whose first answer arrived
    earliest wins; equal arrival times fall back to the label's text order. `agreement` is the
    winning label's share of the answers; `labeled_at` is when the last answer arrived (the
    moment the label became known, used for point-in-time joins).
    """
    if answers.empty:
        return pd.DataFrame(columns=LABEL_COLUMNS)
    frame = answers[["sample_key", "label", "answered_at"]].copy()
    frame["answered_at"] = pd.to_datetime(frame["answered_at"], utc=True)
    votes = (
        frame.groupby(["sample_key", "label"], sort=True)
        .agg(votes=("label", "size"), first_at=("answered_at", "min"))
        .reset_index()
        .sort_values(
            ["sample_key", "votes", "first_at", "label"],
            ascending=[True, False, True, True],
            kind="stable",
        )
    )
    winners = votes.drop_duplicates("sample_key", keep="first").set_index("sample_key")
    per_sample = frame.groupby("sample_key").agg(
        n_answers=("label", "size"), labeled_at=("answered_at", "max")
    )
    result = winners[["label", "votes"]].join(per_sample)
    result["agreement"] = result["votes"] / result["n_answers"]
    return result.reset_index()[LABEL_COLUMNS]


AGGREGATORS = {"majority": majority_vote}
