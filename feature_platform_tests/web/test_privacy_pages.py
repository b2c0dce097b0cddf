"""The web pages redact tagged feature values by the signed-in person's role and the program's
policy (from the template the app runs), and audit every unredacted view."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from feature_platform.catalog import weather
from feature_platform.governance.identity import SYSTEM
from feature_platform.programs.project import ProgramDefinition
from feature_platform.programs.template import ProgramTemplate
from feature_platform_tests.web.conftest import (
    PEOPLE,
    D,
    W,
    Web,
    make_web,
    shipped_programs,
    weather_batch,
    weather_specs,
)

PRIVACY = {
    "weather": {"feature_tags": {"weather": {"temp_max": ["pii"], "wind": ["sensitive"]}}},
    "digits": {"feature_tags": {"digits": {"p5": ["pii"]}}},
}
EVERYONE = {**PEOPLE, "ada": "admin"}
# Who sees which tagged weather column under the default policy (pii: lead+, sensitive:
# reviewer+); viewers may not open the annotate page at all.
VISIBLE = {
    "ann": set(),
    "rev": {"wind"},
    "lea": {"temp_max", "wind"},
    "ada": {"temp_max", "wind"},
}
SHOWN = {"temp_max": "0.1", "wind": "0.3"}  # day 1's values as the table prints them
MARKER = {"temp_max": "[redacted: pii]", "wind": "[redacted: sensitive]"}


def _tagged(definition: ProgramDefinition, policy: dict | None = None) -> ProgramDefinition:
    document = json.loads(json.dumps(definition.template.document))
    document["privacy"] = {**PRIVACY[definition.name], **({"policy": policy} if policy else {})}
    template = ProgramTemplate(document, definition.template.base_dir)
    return ProgramDefinition(template, definition.version, definition.overrides)


def _web(home: Path, policy: dict | None = None) -> Web:
    programs = [_tagged(d, policy) for d in shipped_programs()]
    web = make_web(home, people=EVERYONE, programs=programs)
    for program in web.state.programs.values():  # as the feature set assets register them
        for spec in program.definition.feature_sets:
            program.store.apply(spec, actor=SYSTEM)
    weather_batch(web, days=(1,))
    return web


def _cell(html: str, column: str) -> str:
    found = re.search(rf"<td>{column}</td><td>([^<]*)</td>", html)
    assert found, f"no {column} row in the page"
    return found.group(1)


@pytest.mark.parametrize("name", sorted(VISIBLE))
def test_the_annotate_page_shows_each_role_only_what_it_may_see(tmp_path: Path, name: str) -> None:
    web = _web(tmp_path / "fp")
    page = web.sign_in(name).get(f"{W}/annotate")
    assert page.status_code == 200, page.text
    for column in ("temp_max", "wind"):
        expected = SHOWN[column] if column in VISIBLE[name] else MARKER[column]
        assert _cell(page.text, column) == expected
    assert _cell(page.text, "temp_min") == "-0.05"  # untagged
    assert ("Withheld for your role" in page.text) is (VISIBLE[name] != {"temp_max", "wind"})
    views = web.program("weather").audit.entries(action="privacy.view")
    if not VISIBLE[name]:
        assert views.empty
        return
    [entry] = views.itertuples()
    assert entry.actor == name
    assert entry.target.startswith("task:")
    assert set(entry.detail["columns"]) == VISIBLE[name]
    assert entry.detail["purpose"] == "web:annotate"
    assert entry.detail["via"] == "session"


def test_a_viewer_gets_no_task_page_and_no_values(tmp_path: Path) -> None:
    web = _web(tmp_path / "fp")
    page = web.sign_in("vic").get(f"{W}/annotate")
    assert page.status_code == 403
    assert MARKER["temp_max"] not in page.text and "<td>wind</td>" not in page.text


def test_the_template_policy_decides_what_the_pages_show(tmp_path: Path) -> None:
    web = _web(tmp_path / "fp", policy={"pii": "annotator", "sensitive": "admin"})
    page = web.sign_in("ann").get(f"{W}/annotate")
    assert _cell(page.text, "temp_max") == SHOWN["temp_max"]
    assert _cell(page.text, "wind") == MARKER["wind"]
    [change] = web.program("weather").audit.entries(action="privacy.policy").itertuples()
    assert change.actor == SYSTEM and change.detail["after"]["sensitive"] == "admin"


def test_a_redacted_pixel_is_never_drawn(tmp_path: Path) -> None:
    web = _web(tmp_path / "fp")
    annotator = web.sign_in("ann")
    page = annotator.get(f"{D}/annotate")
    assert page.status_code == 200
    assert _cell(page.text, "p5") == "[redacted: pii]"  # a table instead of the picture
    assert "/sample/" not in page.text
    [lease] = web.queue.leases(annotator="ann")
    assert annotator.get(f"{D}/sample/{lease.task_id}.png").status_code == 404
    lead = web.sign_in("lea")
    picture = lead.get(f"{D}/sample/{lease.task_id}.png")
    assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")
    views = web.audit.entries(action="privacy.view")
    assert [(v.actor, v.detail["purpose"]) for v in views.itertuples()] == [
        ("lea", "web:sample.png")
    ]


def test_the_review_page_redacts_its_conflicts_in_one_round_trip(tmp_path: Path) -> None:
    """Every conflict on the page is redacted by one call: one read of the tags and policy
    and one write of the audit, with one `privacy.view` entry per task shown."""
    web = _web(tmp_path / "fp")
    queue = web.program("weather").store.queue
    made = queue.create_batch("round-002", weather_specs([4, 5, 6]), weather.CLASSES, 2)
    for task in made:  # ann and bob disagree on every day: three conflicts
        queue.submit(task.id, "ann", "rain")
        queue.submit(task.id, "bob", "sun")
    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        statements.append(statement)

    reviewer = web.sign_in("rev")
    sa.event.listen(sa.Engine, "before_cursor_execute", seen)
    try:
        page = reviewer.get(f"{W}/review")
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", seen)
    assert page.status_code == 200, page.text
    assert all(task.id in page.text for task in made) and "(3 left)" in page.text
    tag_reads = [s for s in statements if "FROM privacy_column_tags" in s]
    policy_reads = [s for s in statements if "FROM privacy_policy" in s]
    assert (len(tag_reads), len(policy_reads)) == (1, 1)
    views = web.program("weather").audit.entries(action="privacy.view")
    assert sorted(views["target"]) == sorted(f"task:{task.id}" for task in made)
    for entry in views.itertuples():  # a reviewer sees `sensitive` (wind), not `pii`
        assert entry.actor == "rev" and entry.detail["via"] == "session"
        assert set(entry.detail["columns"]) == {"wind"}
        assert entry.detail["purpose"] == "web:review"
