import dagster as dg

# One partition per active-learning round ("round-001", ...), added by the round sensor.
rounds_partitions = dg.DynamicPartitionsDefinition(name="rounds")
