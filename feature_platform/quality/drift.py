"""Feature drift between a reference (the champion's training set) and the current pool:
population stability index and the two-sample Kolmogorov-Smirnov test, per feature."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

PSI_WARN = 0.2  # the usual rule of thumb: < 0.1 stable, 0.1-0.2 moderate, > 0.2 shifted
KS_ALPHA = 0.01
DRIFT_COLUMNS = ["feature", "psi", "ks_statistic", "ks_pvalue", "drifted"]


def population_stability_index(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """PSI over the reference's quantile bins; empty bins get a small floor so the log is finite."""
    reference = reference[~np.isnan(reference)]
    current = current[~np.isnan(current)]
    if len(reference) == 0 or len(current) == 0:
        return float("nan")
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:  # a constant feature: drift is any departure from that constant
        same = np.isclose(current, edges[0]).mean()
        return float((1 - same) * np.log((1 - same + 1e-4) / 1e-4))
    edges[0], edges[-1] = -np.inf, np.inf
    expected = np.histogram(reference, edges)[0] / len(reference)
    actual = np.histogram(current, edges)[0] / len(current)
    expected, actual = np.clip(expected, 1e-4, None), np.clip(actual, 1e-4, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def drift_report(
    reference: pd.DataFrame, current: pd.DataFrame, features: Sequence[str]
) -> pd.DataFrame:
    """One row per feature, most drifted first. A feature drifts when its PSI exceeds
    PSI_WARN and the KS test rejects equal distributions at KS_ALPHA."""
    rows = []
    for feature in features:
        ref = reference[feature].to_numpy(dtype="float64")
        cur = current[feature].to_numpy(dtype="float64")
        psi = population_stability_index(ref, cur)
        ks = stats.ks_2samp(ref[~np.isnan(ref)], cur[~np.isnan(cur)])
        rows.append(
            {
                "feature": feature,
                "psi": psi,
                "ks_statistic": float(ks.statistic),
                "ks_pvalue": float(ks.pvalue),
                "drifted": bool(psi > PSI_WARN and ks.pvalue < KS_ALPHA),
            }
        )
    report = pd.DataFrame(rows, columns=DRIFT_COLUMNS)
    return report.sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)
