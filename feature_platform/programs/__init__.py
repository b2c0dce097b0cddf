"""Labeling programs: the unit a team brings (source, feature sets, label set, model, strategy,
rules, people), declared as versioned, immutable YAML templates. No Dagster import here."""
