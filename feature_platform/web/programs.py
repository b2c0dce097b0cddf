"""The programs the web app serves: the code location's project (the same loader as
`definitions.py`), each opened on its own stores. The one place pages look a program up."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feature_platform.catalog import PROJECT_DIR
from feature_platform.feature_store import FeatureStore
from feature_platform.governance.identity import system_actor
from feature_platform.governance.roles import ANNOTATOR, Person, canonical_role
from feature_platform.labeling.adjudication import Adjudications
from feature_platform.names import InvalidNameError, check_name
from feature_platform.programs.model import Program
from feature_platform.programs.project import (
    ProgramDefinition,
    apply_privacy,
    location_programs,
    open_program_store,
)
from feature_platform.settings import Settings

IMAGE_8X8, TEXT, TABLE = "image8x8", "text", "table"
PIXELS = frozenset(f"p{i}" for i in range(64))


@dataclass
class WebProgram:
    """One program as the pages see it: its template's settings and its own stores."""

    definition: ProgramDefinition
    store: FeatureStore

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def prefix(self) -> str:
        return f"/p/{self.name}"

    @property
    def program(self) -> Program:
        return self.definition.program

    @property
    def title(self) -> str:
        return str(self.definition.template.resolved.get("description") or self.name)

    @property
    def instructions(self) -> str:
        return self.program.instructions

    @property
    def classes(self) -> tuple[str, ...]:
        """The classes in force: the label set's newest version (labeling/label_sets.py)."""
        return self.store.label_sets.classes(self.program.classes)

    @property
    def model_name(self) -> str:
        return self.definition.model_name

    @property
    def template_version(self) -> str:
        return f"{self.name}@{self.definition.version}" if self.definition.version else "draft"

    @property
    def settings(self) -> dict[str, Any]:
        """The template with every default filled in (what the code location runs)."""
        return self.definition.template.resolved

    @functools.cached_property
    def modality(self) -> str:
        # 8x8 pixel features are drawn as the digit; any other feature set as a table.
        features = {f for spec in self.definition.feature_sets for f in spec.features}
        return IMAGE_8X8 if PIXELS <= features else TABLE

    @functools.cached_property
    def adjudications(self) -> Adjudications:
        return Adjudications(self.store.engine, self.store.queue, self.store.queue.registry)

    @property
    def audit(self):  # noqa: ANN201
        return self.store.queue.registry.audit

    def pool(self) -> list[str]:
        return list(self.settings["annotators"].get("pool") or [])

    def member(self, name: str) -> Person | None:
        """`name` as this program knows them (its own people registry), if they are active
        here and its template's pool lets them in."""
        person = self.store.queue.registry.find(name)
        if person is None or not person.active or not self.open_to(person):
            return None
        return person

    def open_to(self, person: Person) -> bool:
        """Annotators see a program only if its template's pool (when it declares one) names
        them; reviewers, leads and viewers see every program."""
        pool = self.pool()
        if not pool or canonical_role(person.role) != ANNOTATOR:
            return True
        return person.name in pool


def load_programs(
    settings: Settings,
    definitions: Sequence[ProgramDefinition] | None = None,
    project_dir: Path | None = None,
) -> dict[str, WebProgram]:
    """`definitions`, or the programs of `project_dir` (default: the shipped examples) as the
    code location runs them, each on its own stores."""
    if definitions is None:
        definitions = location_programs(settings, project_dir or PROJECT_DIR)
    programs = {d.name: WebProgram(d, open_program_store(settings, d.name)) for d in definitions}
    for program in programs.values():
        # The pages redact by the tags and policy of the template this app runs (recorded in
        # the program's stores, where the command line's exports read them too).
        apply_privacy(program.store, program.definition.template, actor=system_actor())
    return programs


def lookup_program(programs: dict[str, WebProgram], name: str) -> WebProgram | None:
    """The program called `name`, or None for an unknown or malformed name."""
    try:
        check_name(name, "program name")
    except InvalidNameError:
        return None
    return programs.get(name)
