"""feature_platform: an open-source feature store for active learning."""

from feature_platform.feature_store import FeatureStore
from feature_platform.settings import Settings

__all__ = ["FeatureStore", "Settings"]
