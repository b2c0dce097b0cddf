"""Data quality: Pandera schemas for every stage, row-level validation and quarantine."""
