"""Two programs served side by side: each page takes its program from the URL and works on that
program's own stores; a task reached through another program's URL (a forged program / task
pair) is a 404 that changes nothing; annotators see only programs whose pool names them."""

from __future__ import annotations

from pathlib import Path

from feature_platform.catalog import PROJECT_DIR
from feature_platform.governance.credentials import Credentials
from feature_platform.governance.identity import SYSTEM
from feature_platform.governance.roles import AnnotatorRegistry
from feature_platform.programs.project import ProgramDefinition, load_project, template_registry
from feature_platform.programs.template import ProgramTemplate
from feature_platform.settings import Settings
from feature_platform.web.app import create_app
from feature_platform.web.programs import IMAGE_8X8, TABLE
from feature_platform_tests.web.conftest import (
    CSRF,
    PASSWORD,
    D,
    W,
    Web,
    make_web,
    shipped_programs,
    weather_batch,
)


def _task_id(page: str) -> str:
    return page.split('data-task-id="', 1)[1].split('"', 1)[0]


def _state(web: Web) -> dict[str, tuple]:
    """Everything a request could change in either program's queue."""
    found = {}
    for name in ("digits", "weather"):
        queue = web.program(name).store.queue
        found[name] = (
            len(queue.answers()),
            len(queue.passes()),
            sorted((lease.task_id, lease.annotator) for lease in queue.leases()),
            len(web.program(name).adjudications.all()),
            len(web.program(name).audit.entries()),
        )
    return found


def test_two_programs_side_by_side_each_on_its_own_stores(web: Web) -> None:
    weather_batch(web)
    client = web.sign_in("ann")
    home = client.get("/").text
    assert 'id="program-digits"' in home and 'id="program-weather"' in home
    assert "template draft" in home and "drizzle, fog, rain, snow, sun" in home

    digits_page = client.get(f"{D}/annotate").text
    assert f'src="{D}/sample/' in digits_page  # the digit drawn as a picture
    assert "Which digit (0-9) is written in the picture?" in digits_page
    weather_page = client.get(f"{W}/annotate")
    assert weather_page.status_code == 200
    text = weather_page.text
    # A tabular program: the day's feature values as a table, its own labels and instructions.
    assert '<table class="features">' in text and "<td>precipitation</td>" in text
    assert "/sample/" not in text
    assert "From the day&#39;s measurements, what was the weather?" in text
    for label in ("drizzle", "fog", "rain", "snow", "sun"):
        assert f'value="{label}"' in text
    assert f'action="{W}/annotate/answer"' in text and f'data-renew="{W}/annotate/renew"' in text

    token = CSRF.search(text).group(1)
    digit_task, weather_task = _task_id(digits_page), _task_id(text)
    answered = client.post(
        f"{W}/annotate/answer", data={"csrf": token, "task_id": weather_task, "label": "rain"}
    )
    assert answered.status_code == 303 and answered.headers["location"] == f"{W}/annotate"
    answered = client.post(
        f"{D}/annotate/answer", data={"csrf": token, "task_id": digit_task, "label": "3"}
    )
    assert answered.status_code == 303
    digits_queue, weather_queue = web.queue, web.program("weather").store.queue
    assert weather_queue.answers()[["task_id", "label"]].values.tolist() == [[weather_task, "rain"]]
    assert digits_queue.answers()[["task_id", "label"]].values.tolist() == [[digit_task, "3"]]
    # Each program's audit log holds its own answers only.
    for name, task_id in (("digits", digit_task), ("weather", weather_task)):
        entries = web.program(name).audit.entries(action="label.answer")
        assert entries["target"].tolist() == [f"task:{task_id}"]
    # Its own dashboard and lead page: its own queue, template and model.
    lead = web.sign_in("lea")
    dashboard = lead.get(f"{W}/dashboard").text
    assert "Label each day&#39;s weather from its measurements." in dashboard
    settings = lead.get(f"{W}/lead").text
    assert "Template version: <b>draft</b>" in settings and "weather-classifier" in settings
    assert "digits-classifier" not in settings


def test_a_task_is_not_reachable_through_another_programs_url(web: Web) -> None:
    weather_batch(web)
    ann = web.sign_in("ann")
    digit_task = _task_id(ann.get(f"{D}/annotate").text)  # ann holds a live digits lease
    token = web.csrf(ann)
    rev = web.sign_in("rev")
    rev_token = web.csrf(rev)
    before = _state(web)

    forged = [
        (ann, f"{W}/annotate/answer", {"label": "3"}),
        (ann, f"{W}/annotate/answer", {"label": "rain"}),
        (ann, f"{W}/annotate/skip", {"reason": "not a digit"}),
        (ann, f"{W}/annotate/unsure", {}),
        (ann, f"{W}/annotate/undo", {}),
        (ann, f"{W}/annotate/revise", {"label": "rain"}),
        (ann, f"{W}/annotate/renew", {}),
        (rev, f"{W}/review/adjudicate", {"label": "rain"}),
    ]
    for client, path, data in forged:
        csrf = token if client is ann else rev_token
        response = client.post(path, data={"csrf": csrf, "task_id": digit_task, **data})
        assert response.status_code == 404, (path, response.text)
        assert "No task" in response.text
    assert ann.get(f"{W}/sample/{digit_task}.png").status_code == 404
    assert ann.get(f"{W}/annotate?revise={digit_task}").status_code in (404, 409)
    # Unknown or malformed program names are 404s too, before any store is touched.
    for program in ("nope", "Digits", "..", "digits%2F..", "a" * 200):
        assert ann.get(f"/p/{program}/annotate").status_code == 404, program
        form = {"csrf": token, "task_id": digit_task, "label": "3"}
        assert ann.post(f"/p/{program}/annotate/answer", data=form).status_code == 404
    # Nothing changed in either program (the weather page leased nothing: ann never opened it).
    assert _state(web) == before
    assert [lease.task_id for lease in web.queue.leases("ann")] == [digit_task]


def _with_pool(definition: ProgramDefinition, pool: list[str]) -> ProgramDefinition:
    template = definition.template
    document = {**template.document, "annotators": {"pool": pool, "roles": {}}}
    return ProgramDefinition(ProgramTemplate(document, template.base_dir), definition.version)


def test_annotators_see_only_programs_whose_pool_names_them(tmp_path: Path) -> None:
    programs = [_with_pool(p, ["ann"]) if p.name == "weather" else p for p in shipped_programs()]
    web = make_web(tmp_path / "fp", programs=programs)
    weather_batch(web)
    bob = web.sign_in("bob")
    home = bob.get("/").text
    assert 'id="program-digits"' in home and 'id="program-weather"' not in home
    assert bob.get(f"{W}/annotate").status_code == 404
    assert bob.get(f"{W}/dashboard").status_code == 404
    assert not web.program("weather").store.queue.leases()
    ann = web.sign_in("ann")
    assert 'id="program-weather"' in ann.get("/").text
    assert ann.get(f"{W}/annotate").status_code == 200
    # Reviewers and leads oversee every program, pool or not.
    assert 'id="program-weather"' in web.sign_in("rev").get("/").text
    # Someone the weather program never registered (signed in, labels digits) cannot reach it.
    registry = AnnotatorRegistry(web.state.store.engine)
    registry.add("cat", "reviewer", actor=SYSTEM)
    Credentials(web.state.store.engine, registry).set_password("cat", PASSWORD, actor=SYSTEM)
    web.program("digits").store.queue.registry.add("cat", "annotator", actor=SYSTEM)
    cat = web.sign_in("cat")
    home = cat.get("/").text
    assert 'id="program-digits"' in home and 'id="program-weather"' not in home
    assert "your role here: annotator" in home  # the program's own role, not the platform's
    assert cat.get(f"{W}/review").status_code == 404
    assert cat.get(f"{D}/review").status_code == 403


def test_the_app_serves_the_programs_the_code_location_runs(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """By default: the shipped project under its published template versions, with the
    deployment's FP_* overrides (what `definitions.py` runs), each on its own database."""
    monkeypatch.setenv("FP_BATCH_SIZE", "7")
    settings = Settings.under(tmp_path / "fp")
    registry = template_registry(settings)
    registry.publish_many([p.template for p in load_project(PROJECT_DIR)])
    registry.engine.dispose()
    app = create_app(settings, secret="s" * 40)
    programs = app.state.web.programs
    assert sorted(programs) == ["digits", "weather"]
    assert [programs[n].template_version for n in sorted(programs)] == ["digits@v1", "weather@v1"]
    assert {p.program.batch_size for p in programs.values()} == {7}
    urls = {str(p.store.engine.url) for p in programs.values()} | {
        str(app.state.web.store.engine.url)
    }
    assert len(urls) == 3  # the platform database and one per program
    assert (programs["digits"].modality, programs["weather"].modality) == (IMAGE_8X8, TABLE)
