"""Feature store core: registry, offline store, online store, sources. Plain Python."""
