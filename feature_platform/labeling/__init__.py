"""Labeling core: task queue with leases, every answer kept, aggregation, label snapshots."""
