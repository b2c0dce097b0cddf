"""Lineage you can query: raw sources -> feature set versions -> training sets -> models.

Built from the registry alone: each version names its sources; each training set or model
recorded its version with `Registry.record_usage` (and, for a model, the training set it was
built from as `upstream`). `build_lineage` returns the connected graph around one target,
as a dict (for JSON / Dagster metadata) or markdown (for the UI and the CLI).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from feature_platform.errors import FeaturePlatformError, UnknownFeatureSetError, closest

if TYPE_CHECKING:
    from feature_platform.store.registry import Registry, Usage

KIND_ORDER = ("source", "feature_set", "training_set", "model")


@dataclass(frozen=True)
class LineageNode:
    id: str  # "<kind>:<key>", e.g. "feature_set:digits@v1"
    kind: str
    label: str
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class LineageGraph:
    """Nodes and directed edges (upstream -> downstream) around `focus`."""

    focus: list[str]
    nodes: dict[str, LineageNode] = field(default_factory=dict)
    edges: set[tuple[str, str]] = field(default_factory=set)

    def add(self, node: LineageNode) -> None:
        self.nodes.setdefault(node.id, node)

    def upstream(self, node_id: str) -> list[str]:
        return sorted(a for a, b in self.edges if b == node_id)

    def downstream(self, node_id: str) -> list[str]:
        return sorted(b for a, b in self.edges if a == node_id)

    def of_kind(self, kind: str) -> list[LineageNode]:
        return sorted((n for n in self.nodes.values() if n.kind == kind), key=lambda n: n.id)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: {"focus", "nodes": [{id, kind, label, attributes}], "edges": [...]}"""
        return {
            "focus": list(self.focus),
            "nodes": [
                {"id": n.id, "kind": n.kind, "label": n.label, "attributes": n.attributes}
                for kind in KIND_ORDER + self._other_kinds()
                for n in self.of_kind(kind)
            ],
            "edges": [{"from": a, "to": b} for a, b in sorted(self.edges)],
        }

    def to_markdown(self) -> str:
        """One section per kind (sources, feature set versions, training sets, models), each
        node with its attributes and what it feeds; readable in the Dagster UI and a terminal."""
        titles = {
            "source": "Raw sources",
            "feature_set": "Feature set versions",
            "training_set": "Training sets",
            "model": "Models",
        }
        lines = [f"# Lineage of {', '.join(f'`{f}`' for f in self.focus)}", ""]
        for kind in KIND_ORDER + self._other_kinds():
            nodes = self.of_kind(kind)
            if not nodes:
                continue
            lines += [f"## {titles.get(kind, kind.replace('_', ' ').capitalize() + 's')}", ""]
            for node in nodes:
                marker = " **(focus)**" if node.id in self.focus else ""
                lines.append(f"- `{node.label}`{marker}")
                for key, value in node.attributes.items():
                    if value not in (None, "", [], {}):
                        lines.append(f"  - {key}: {_format(value)}")
                feeds = [self.nodes[d].label for d in self.downstream(node.id)]
                if feeds:
                    lines.append(f"  - feeds: {', '.join(f'`{f}`' for f in feeds)}")
            lines.append("")
        if self.edges:
            lines += ["## Edges", ""]
            lines += [
                f"- `{self.nodes[a].label}` → `{self.nodes[b].label}`"
                for a, b in sorted(self.edges)
            ]
        return "\n".join(lines).rstrip() + "\n"

    def _other_kinds(self) -> tuple[str, ...]:
        return tuple(sorted({n.kind for n in self.nodes.values()} - set(KIND_ORDER)))


def _format(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(
            f"{k}={_format(v) if isinstance(v, list | tuple) else v}" for k, v in value.items()
        )
    return str(value)


TAGGED = "trained_on_tagged_columns"


def _consumer_node(usage: Usage) -> LineageNode:
    details = dict(usage.details)
    if TAGGED in details and not details[TAGGED]:
        details[TAGGED] = "none"  # said explicitly: the model learned from no tagged column
    return LineageNode(
        id=usage.consumer,
        kind=usage.consumer_kind,
        label=usage.consumer_id,
        attributes={
            "recorded_at": usage.recorded_at.isoformat(),
            "released_at": usage.released_at.isoformat() if usage.released_at else None,
            **details,
        },
    )


def _bare_consumer_node(consumer: str) -> LineageNode:
    kind, _, key = consumer.partition(":")
    return LineageNode(id=consumer, kind=kind, label=key)


def build_lineage(registry: Registry, target: str) -> LineageGraph:
    """The graph of everything upstream and downstream of `target` (see Registry.lineage)."""
    from feature_platform.governance.privacy import feature_subject, source_subject

    usages = registry.usages(include_released=True)
    tagged = registry.privacy.all_tags()

    def tags_of(subject: str) -> dict[str, list[str]]:
        return {c: list(t) for c, t in tagged.get(subject, {}).items()}

    versions = {fsv.id: fsv for fsv in registry.list_versions()}
    aliases = {name: registry.aliases(name) for name in {v.name for v in versions.values()}}

    def version_node(fsv_id: str) -> LineageNode:
        fsv = versions[fsv_id]
        pointing = sorted(a for a, v in aliases.get(fsv.name, {}).items() if v == fsv.version)
        return LineageNode(
            id=f"feature_set:{fsv.id}",
            kind="feature_set",
            label=fsv.id,
            attributes={
                "status": fsv.status,
                "aliases": pointing,
                "entity": fsv.entity,
                "features": len(fsv.features),
                "fingerprint": fsv.fingerprint,
                "transform_fingerprint": fsv.transform_fingerprint,
                "params": fsv.params,
                "tags": tags_of(feature_subject(fsv.id)),
                "created_at": fsv.created_at.isoformat(),
            },
        )

    # The whole graph (it is small: versions and consumers, not rows), then the component.
    full = LineageGraph(focus=[])
    for fsv in versions.values():
        full.add(version_node(fsv.id))
        for source in fsv.sources:
            full.add(
                LineageNode(
                    f"source:{source}",
                    "source",
                    source,
                    {"tags": tags_of(source_subject(source))},
                )
            )
            full.edges.add((f"source:{source}", f"feature_set:{fsv.id}"))
    for usage in usages:
        full.add(_consumer_node(usage))
        if usage.upstream:
            full.add(_bare_consumer_node(usage.upstream))
            full.edges.add((usage.upstream, usage.consumer))
        else:
            full.edges.add((f"feature_set:{usage.feature_set}", usage.consumer))
    # A consumer built from another (model <- training set) whose upstream is not itself
    # recorded against the version still hangs off the version.
    for usage in usages:
        if usage.upstream and not any(u.consumer == usage.upstream for u in usages):
            full.edges.add((f"feature_set:{usage.feature_set}", usage.upstream))

    focus = _focus(registry, full, versions, target)
    graph = LineageGraph(focus=focus)
    for start in focus:
        for direction in ("up", "down"):
            stack, seen = [start], set()
            while stack:
                node_id = stack.pop()
                if node_id in seen:
                    continue
                seen.add(node_id)
                graph.add(full.nodes[node_id])
                nxt = full.upstream(node_id) if direction == "up" else full.downstream(node_id)
                for other in nxt:
                    edge = (other, node_id) if direction == "up" else (node_id, other)
                    graph.edges.add(edge)
                    stack.append(other)
    return graph


def _focus(registry: Registry, full: LineageGraph, versions: dict, target: str) -> list[str]:
    target = target.strip()
    if not target:
        raise FeaturePlatformError("Name a feature set, version, model or source for lineage.")
    if target in full.nodes:
        return [target]
    kind, colon, key = target.partition(":")
    if colon and "@" not in kind:
        if kind == "feature_set":
            return _focus(registry, full, versions, key)
        candidates = [n.id for n in full.nodes.values() if n.kind == kind]
        if not candidates:
            raise UnknownFeatureSetError(
                f"Nothing of kind {kind!r} is recorded. Kinds: "
                f"{sorted({n.kind for n in full.nodes.values()})}."
            )
        raise UnknownFeatureSetError(
            f"Unknown {kind} {key!r}.{closest(target, candidates)} Known: {candidates[:20]}."
        )
    if "@" in target:
        name, _, selector = target.partition("@")
        fsv = registry.resolve(name, selector, warn=False)  # raises with suggestions
        return [f"feature_set:{fsv.id}"]
    named = sorted(f"feature_set:{v}" for v, fsv in versions.items() if fsv.name == target)
    if named:
        return named
    matches = [n.id for n in full.nodes.values() if n.label == target]
    if len(matches) == 1:
        return matches
    if len(matches) > 1:
        raise FeaturePlatformError(
            f"{target!r} names several things: {sorted(matches)}; prefix it with the kind."
        )
    names = registry.names()
    labels = [*names, *(n.label for n in full.nodes.values())]
    raise UnknownFeatureSetError(
        f"Nothing called {target!r} in the lineage.{closest(target, labels)} Feature sets: "
        f"{names}; use 'model:<id>', 'training_set:<id>' or 'source:<name>' for "
        f"others."
    )
