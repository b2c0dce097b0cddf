import numpy as np
import pandas as pd

from feature_platform.quality.drift import PSI_WARN, drift_report, population_stability_index


def test_shifted_feature_is_flagged_and_stable_ones_are_not() -> None:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"same": rng.normal(0, 1, 600), "moved": rng.normal(0, 1, 600)})
    current = pd.DataFrame({"same": rng.normal(0, 1, 900), "moved": rng.normal(1.5, 1, 900)})
    report = drift_report(reference, current, ["same", "moved"]).set_index("feature")
    assert report.loc["moved", "drifted"] and report.loc["moved", "psi"] > PSI_WARN
    assert not report.loc["same", "drifted"] and report.loc["same", "psi"] < 0.1
    assert report.index[0] == "moved"  # most drifted first


def test_psi_of_constant_and_identical_features() -> None:
    zeros = np.zeros(100)
    assert population_stability_index(zeros, zeros) == 0.0
    assert population_stability_index(zeros, np.ones(100)) > PSI_WARN
    x = np.linspace(0, 1, 1000)
    assert population_stability_index(x, x) < 1e-9
