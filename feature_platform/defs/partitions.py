import dagster as dg

from feature_platform.catalog import digits

# One partition per active-learning round ("round-001", ...), added by the round sensor.
rounds_partitions = dg.DynamicPartitionsDefinition(name="rounds")

# Raw samples arrive over time: one partition per day of arrivals, so a backfill of N days
# runs as N partitions in parallel and the nightly schedule refreshes only yesterday.
arrival_days = dg.DailyPartitionsDefinition(
    start_date=digits.ARRIVALS_FROM.strftime("%Y-%m-%d"), timezone="UTC"
)


def all_arrival_days_tags() -> dict[str, str]:
    """Run tags that make one run cover every arrival day so far (a single-run backfill)."""
    keys = arrival_days.get_partition_keys()
    return {
        "dagster/asset_partition_range_start": keys[0],
        "dagster/asset_partition_range_end": keys[-1],
    }
