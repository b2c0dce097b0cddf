"""The project's own sources and feature set definitions (what Feast calls a feature repo)."""
