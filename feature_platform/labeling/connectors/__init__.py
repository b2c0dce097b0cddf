"""Connectors: tasks out to other tools and files, answers back in (see labeling.imports)."""
