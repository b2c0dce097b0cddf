"""The lead changes program settings on the lead page: a new published template version,
validated, audited, as the signed-in lead; everyone else is refused and nothing is published."""

from __future__ import annotations

from feature_platform.catalog import PROJECT_DIR
from feature_platform.governance.identity import SYSTEM
from feature_platform.programs.project import location_programs
from feature_platform.programs.registry import TemplateRegistry
from feature_platform.programs.template import ProgramTemplate
from feature_platform_tests.web.conftest import CSRF, D, W, Web, make_web

GOOD = {
    "strategy": "entropy",
    "batch_size": "7",
    "overlap": "2",
    "label_budget": "150",
    "promotion_tolerance": "0.02",
    "target_accuracy": "0.9",
}


def _registry(web: Web) -> TemplateRegistry:
    return TemplateRegistry(web.state.store.engine)


def _versions(web: Web, name: str = "digits") -> list[str]:
    return [t.version for t in _registry(web).versions(name)]


def _post(web: Web, client, data: dict[str, str], program: str = D):  # noqa: ANN001, ANN202
    token = web.csrf(client, f"{program}/lead") if "csrf" not in data else data["csrf"]
    return client.post(f"{program}/lead/settings", data={"csrf": token, **data})


def test_lead_publishes_a_new_version_with_the_changed_settings(web: Web) -> None:
    lead = web.sign_in("lea")
    page = lead.get(f"{D}/lead").text
    assert 'action="/p/digits/lead/settings"' in page and "none yet" in page
    assert "<option selected>margin</option>" in page  # the running template's values
    before = web.program().definition.template.fingerprint()

    done = _post(web, lead, GOOD)
    assert done.status_code == 303 and done.headers["location"] == f"{D}/lead#settings"
    published = _registry(web).get("digits")
    assert published.version == "v1" and published.fingerprint != before
    program = ProgramTemplate(published.document, published.base_dir).program()
    assert (program.strategy, program.batch_size, program.answers_per_task) == ("entropy", 7, 2)
    assert (program.label_budget, program.promotion_tolerance) == (150, 0.02)
    assert published.document["stopping"]["target_accuracy"] == 0.9
    # Everything else is the running template's: the label set, the source, the features.
    running = web.program().definition.template.resolved
    for key in ("labels", "source", "features", "model"):
        assert published.document[key] == running[key]
    entries = web.state.audit.entries(action="program_template.publish")
    assert entries["actor"].tolist() == ["lea"] and entries["target"].tolist() == ["digits@v1"]
    assert entries["detail"].iloc[0]["via"] == "session"
    assert "batch_size: 20 -> 7" in entries["detail"].iloc[0]["note"]

    page = lead.get(f"{D}/lead").text
    assert "digits@v1" in page and published.fingerprint in page
    assert "<option selected>entropy</option>" in page and 'value="7"' in page
    assert "runs its current version" in page  # what the code location really runs

    # A second change builds on the newest version: v2, the earlier changes kept.
    assert _post(web, lead, {**GOOD, "batch_size": "9"}).status_code == 303
    assert _versions(web) == ["v1", "v2"]
    assert _registry(web).get("digits").document["strategy"]["name"] == "entropy"
    assert _registry(web).diff("digits@v1", "digits@v2") == ["batch_size: 7 -> 9"]
    assert _versions(web, "weather") == []  # another program is untouched

    # What the code location runs after a reload: the current version, v2 ...
    def running() -> tuple[str | None, int]:
        (digits,) = [
            p for p in location_programs(web.state.settings, PROJECT_DIR) if p.name == "digits"
        ]
        return digits.version, digits.program.batch_size

    assert running() == ("v2", 9)
    # ... and earlier settings submitted again make their version current again (no new one).
    assert _post(web, lead, GOOD).status_code == 303
    assert _versions(web) == ["v1", "v2"] and running() == ("v1", 7)
    moves = web.state.audit.entries(action="program_template.current")
    assert moves["target"].tolist() == ["digits@v1", "digits@v2", "digits@v1"]


def test_invalid_values_are_shown_by_their_field_and_nothing_is_published(web: Web) -> None:
    lead = web.sign_in("lea")
    cases = [
        ({"batch_size": "0"}, "batch_size", "expected an integer &gt;= 1, got 0"),
        ({"strategy": "psychic"}, "strategy", "unknown strategy &#39;psychic&#39;"),
        ({"overlap": "two"}, "overlap", "expected a whole number, got &#39;two&#39;"),
        ({"promotion_tolerance": "-1"}, "promotion_tolerance", "expected a number &gt;= 0"),
        ({"target_accuracy": "1.5"}, "target_accuracy", "target_accuracy"),
        ({"promotion_tolerance": "nan"}, "promotion_tolerance", "expected a number"),
        ({"label_budget": ""}, "label_budget", "required"),
    ]
    for change, field, message in cases:
        response = _post(web, lead, {**GOOD, **change})
        assert response.status_code == 422, (change, response.text)
        error = response.text.split(f'id="error-{field}">', 1)[1].split("</span>", 1)[0]
        assert message in error, (change, error)
        assert f'id="f-{field}"' in response.text
    # Several errors at once, each by its own field; the typed values are kept, escaped.
    both = _post(web, lead, {**GOOD, "batch_size": "<b>x</b>", "strategy": "nope"})
    assert both.status_code == 422
    assert 'id="error-batch_size"' in both.text and "<b>x</b>" not in both.text
    assert "&lt;b&gt;x&lt;/b&gt;" in both.text
    assert _versions(web) == []
    assert not len(web.state.audit.entries(action="program_template.publish"))


def test_only_a_lead_of_this_program_may_change_its_settings(tmp_path) -> None:  # noqa: ANN001
    web = make_web(tmp_path / "fp", batch=())
    for name in ("ann", "rev", "vic"):
        client = web.sign_in(name)
        token = CSRF.search(client.get("/").text).group(1)
        refused = _post(web, client, {**GOOD, "csrf": token})
        assert refused.status_code == 403, name
    # A lead of weather who is only an annotator in digits: digits' own registry decides.
    web.program("digits").store.queue.registry.add("lea", "annotator", actor=SYSTEM)
    lead = web.sign_in("lea")
    assert lead.get(f"{D}/lead").status_code == 403
    token = web.csrf(lead, f"{W}/lead")
    assert _post(web, lead, {**GOOD, "csrf": token}).status_code == 403
    assert _versions(web) == []
    assert _post(web, lead, {**GOOD, "csrf": token}, program=W).status_code == 303
    assert _versions(web, "weather") == ["v1"]
    # A lead in weather's registry who is only a viewer on the platform: the template
    # registry (platform database) refuses to publish for them.
    web.program("weather").store.queue.registry.add("vic", "lead", actor=SYSTEM)
    vic = web.sign_in("vic")
    token = web.csrf(vic, f"{W}/lead")
    assert _post(web, vic, {**GOOD, "batch_size": "3", "csrf": token}, program=W).status_code == 403
    assert _versions(web, "weather") == ["v1"]


def test_csrf_missing_foreign_or_replayed(web: Web) -> None:
    lead = web.sign_in("lea")
    missing = lead.post(f"{D}/lead/settings", data=GOOD)
    assert missing.status_code == 403 and "CSRF" in missing.text
    other = web.sign_in("lea")  # another session's token is not this session's
    foreign = _post(web, lead, {**GOOD, "csrf": web.csrf(other, f"{D}/lead")})
    assert foreign.status_code == 403
    assert _versions(web) == []
    token = web.csrf(lead, f"{D}/lead")
    assert _post(web, lead, {**GOOD, "csrf": token}).status_code == 303
    replay = _post(web, lead, {**GOOD, "csrf": token})
    assert replay.status_code == 409 and "already the current version digits@v1" in replay.text
    assert _versions(web) == ["v1"]
    assert len(web.state.audit.entries(action="program_template.publish")) == 1
