"""End to end in a real headless Chromium (Debian's `chromium`, driven by Playwright): two
annotators and a reviewer sign in, pick the digits program among the shipped ones, label a whole
round by keyboard, a conflict is adjudicated, the program's retrain sensor (built by the Dagster
factory, `digits__retrain_when_labels_in`) trains the round's model and its round sensor opens
the next round, and the dashboard shows it. Screenshots of every page go to a scratch folder
unless FP_SCREENSHOT_DIR is set (docs/screenshots refreshes the README's pictures).

Skipped when no `chromium` is installed, unless FP_REQUIRE_BROWSER=1 (CI), where it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from feature_platform.catalog import PROJECT_DIR, digits
from feature_platform.defs.context import ProgramContext
from feature_platform.defs.location import build_definitions
from feature_platform.defs.resources import StoreResource
from feature_platform.governance.credentials import Credentials
from feature_platform.governance.identity import SYSTEM
from feature_platform.governance.roles import AnnotatorRegistry
from feature_platform.programs.project import ProgramDefinition, load_project, template_registry
from feature_platform.settings import Settings
from feature_platform.web.app import WebConfig, create_app

pytestmark = pytest.mark.slow

# A test run must not rewrite tracked files: screenshots go to a scratch folder unless
# FP_SCREENSHOT_DIR points elsewhere (docs/screenshots to refresh the README's pictures).
SCREENSHOTS = Path(
    os.environ.get("FP_SCREENSHOT_DIR")
    or Path(tempfile.gettempdir()) / "feature_platform_screenshots"
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "correct horse battery"
BATCH = 10


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("FP_REQUIRE_BROWSER") == "1":
            pytest.fail("FP_REQUIRE_BROWSER=1 but no `chromium` is installed")
        pytest.skip("no chromium installed (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        if os.environ.get("FP_REQUIRE_BROWSER") == "1":
            pytest.fail("FP_REQUIRE_BROWSER=1 but Playwright is not installed")
        pytest.skip("playwright is not installed (the dev extra has it)")
    return path


class Loop:
    """One program's round sensors and jobs (prefixed by the factory: `digits__...`),
    evaluated and executed the way the daemon would."""

    def __init__(
        self, settings: Settings, programs: list[ProgramDefinition], name: str = "digits"
    ) -> None:
        self.defs = build_definitions(settings, programs)
        self.ctx = ProgramContext(next(p for p in programs if p.name == name))
        self.instance = dg.DagsterInstance.ephemeral()
        self.store = StoreResource.from_settings(settings).for_program(name)

    def sensor(self, name: str):  # noqa: ANN201
        sensor = self.defs.get_repository_def().get_sensor_def(self.ctx.job_name(name))
        return sensor(
            dg.build_sensor_context(instance=self.instance, resources=self.defs.resources)
        )

    def run(self, job: str, partition_key: str | None = None, tags=None) -> None:  # noqa: ANN001
        result = self.defs.resolve_job_def(self.ctx.job_name(job)).execute_in_process(
            instance=self.instance,
            partition_key=partition_key,
            tags=tags or {},
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
        assert result.success

    def refresh_features(self, until: datetime | None = None) -> None:
        """Every arrival partition up to `until` (default: the source's newest arrival)."""
        if until is None:
            until = self.ctx.source.read()[self.ctx.source.event_time].max().to_pydatetime()
        self.run("refresh_features", tags=self.ctx.all_arrival_days_tags(until=until))

    def open_next_round(self) -> str:
        opened = self.sensor("open_next_round")
        assert isinstance(opened, dg.SensorResult), opened
        for request in opened.dynamic_partitions_requests:
            self.instance.add_dynamic_partitions(
                request.partitions_def_name, list(request.partition_keys)
            )
        (request,) = opened.run_requests
        self.run("open_round", request.partition_key)
        return request.partition_key

    def retrain(self) -> list[str]:
        requests = self.sensor("retrain_when_labels_in")
        if isinstance(requests, dg.SkipReason):
            return []
        for request in requests:
            self.run("retrain", request.partition_key)
        return [r.partition_key for r in requests]


def _programs(settings: Settings) -> list[ProgramDefinition]:
    """The shipped programs under their published template versions, digits with a small
    batch answered twice; the code location and the web app get the same definitions."""
    registry = template_registry(settings)
    registry.publish_many([p.template for p in load_project(PROJECT_DIR)])
    programs = load_project(PROJECT_DIR, registry=registry)
    registry.engine.dispose()
    small = {"batch_size": BATCH, "label_budget": 3 * BATCH, "answers_per_task": 2}
    return [p.with_overrides(**small) if p.name == "digits" else p for p in programs]


def _serve(app) -> tuple[str, object, threading.Thread]:  # noqa: ANN001
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the web app did not start"
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


def _sign_in(page, base: str, name: str) -> None:  # noqa: ANN001
    page.goto(f"{base}/login")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    with page.expect_navigation():
        page.click("#sign-in")


def _press(page, key: str) -> None:  # noqa: ANN001
    with page.expect_navigation():
        page.keyboard.press(key)


def _sample_key(page) -> str:  # noqa: ANN001
    return re.search(r"sample (\d+)", page.inner_text(".meta")).group(1)


def test_people_label_a_round_in_the_browser_and_the_loop_retrains(tmp_path: Path) -> None:
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    settings = Settings.under(tmp_path / "fp")
    programs = _programs(settings)
    loop = Loop(settings, programs)
    loop.refresh_features()
    first = loop.open_next_round()
    assert first == "round-001"
    # The weather program beside it: its own sensors open its own first round.
    weather = Loop(settings, programs, "weather")
    weather.refresh_features(until=datetime(2012, 4, 1, tzinfo=UTC))  # a quarter: quick
    assert weather.open_next_round() == "round-001"

    app = create_app(
        settings, secret="e2e-" + "s" * 40, config=WebConfig(undo_seconds=120), programs=programs
    )
    web = app.state.web
    registry = AnnotatorRegistry(web.store.engine)
    credentials = Credentials(web.store.engine, registry)
    roles = {"ann": "annotator", "bob": "annotator", "rev": "reviewer", "lea": "lead"}
    for name, role in roles.items():  # an admin's work; here the platform's own identity
        registry.add(name, role, actor=SYSTEM)
        credentials.set_password(name, PASSWORD, actor=SYSTEM)
        for served in web.programs.values():  # and in each program's own registry
            served.store.queue.registry.add(name, role, actor=SYSTEM)
    program = web.programs["digits"]
    base_url = "/p/digits"
    truth = digits.ground_truth_oracle()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    base, server, thread = _serve(app)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            people = {
                name: browser.new_context(viewport={"width": 1200, "height": 860}).new_page()
                for name in ("ann", "bob", "rev", "lea")
            }
            login = people["ann"]
            login.goto(f"{base}/login")
            login.screenshot(path=str(SCREENSHOTS / "sign-in.png"))
            for name, page in people.items():
                _sign_in(page, base, name)
            # Home: the programs of the code location, each with the pages of one's role.
            home = people["ann"]
            assert home.locator("section.program").count() == 2
            assert "digits@v1" in home.inner_text("#program-digits")
            assert "weather@v1" in home.inner_text("#program-weather")
            home.screenshot(path=str(SCREENSHOTS / "programs.png"), full_page=True)
            with home.expect_navigation():
                home.click(f'#program-digits a[href="{base_url}/annotate"]')

            # Both annotators label the whole round with the keyboard. Ann gets her first
            # answer wrong and takes it back with `z`; Bob's first answer disagrees with hers.
            disputed = None
            for name in ("ann", "bob"):
                page = people[name]
                page.goto(f"{base}{base_url}/annotate")
                for number in range(BATCH):
                    if not page.locator("#countdown").count():
                        raise AssertionError(page.content()[:3000])
                    assert re.fullmatch(r"\d+:\d\d", page.inner_text("#countdown"))
                    key = _sample_key(page)
                    right = truth[key]
                    if number == 0 and name == "ann":
                        _press(page, str((int(right) + 1) % 10))
                        _press(page, "z")
                        assert "Changing your answer" in page.inner_text("#revising")
                    if number == 0 and name == "bob":
                        disputed = key
                        _press(page, str((int(right) + 2) % 10))
                    else:
                        _press(page, right)
                assert "Nothing to label right now" in page.content()
            assert loop.store.queue.counts(first)["answered"] == BATCH
            revisions = loop.store.queue.answers(first, history=True)
            assert int((revisions["revision"] == 2).sum()) == 1

            review = people["rev"]
            review.goto(f"{base}{base_url}/review")
            assert disputed in review.inner_text(".conflict.current")
            review.screenshot(path=str(SCREENSHOTS / "review.png"), full_page=True)
            _press(review, truth[disputed])
            assert "No disagreeing answers" in review.content()
            decided = program.adjudications.latest()
            assert decided[["label", "reviewer"]].values.tolist() == [[truth[disputed], "rev"]]

            # The sensor sees the round fully answered and retrains; the next round opens.
            assert loop.retrain() == [first]
            second = loop.open_next_round()
            assert second == "round-002"

            lead = people["lea"]
            lead.goto(f"{base}{base_url}/dashboard?round={first}")
            assert "round-001: model digits-classifier/1" in lead.inner_text("#round-model")
            assert "round-001" in lead.inner_text("#trained-rounds")
            lead.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)
            lead.goto(f"{base}{base_url}/dashboard")
            assert "round-002: no model trained yet" in lead.inner_text("#round-model")
            lead.goto(f"{base}{base_url}/lead")
            assert "answers_per_task\t2" in lead.inner_text("section.card")
            assert "digits@v1" in lead.inner_text("#template-version")
            lead.screenshot(path=str(SCREENSHOTS / "lead.png"), full_page=True)

            # The next round appears for the annotators, scored by the new model.
            page = people["ann"]
            page.goto(f"{base}{base_url}/annotate")
            assert "round-002" in page.inner_text(".meta")
            assert "digits-classifier/1" in page.inner_text(".versions")
            assert page.locator(".guesses li").count() == 3
            page.screenshot(path=str(SCREENSHOTS / "annotate.png"), full_page=True)

            # The same person on the weather program: its sample as a table of feature values,
            # its labels (numbered keys) and instructions; the answer lands in its own queue.
            page.goto(f"{base}/p/weather/annotate")
            assert page.locator("table.features td").first.is_visible()
            assert page.locator(".sample img").count() == 0
            assert "From the day's measurements" in page.inner_text(".instructions")
            assert "weather@v1" in page.inner_text(".versions")
            page.screenshot(path=str(SCREENSHOTS / "annotate-table.png"), full_page=True)
            day = page.locator("#task").get_attribute("data-task-id")
            _press(page, "5")  # the fifth label: sun
            answered = weather.store.queue.answers()
            assert answered[["task_id", "annotator", "label"]].values.tolist() == [
                [day, "ann", "sun"]
            ]
            assert not loop.store.queue.answers().query("task_id == @day").shape[0]
            with page.expect_navigation():
                page.click("#sign-out")
            assert not loop.store.queue.leases("ann")
            assert not weather.store.queue.leases("ann")

            # The lead adds a class to weather's label set with the Labels page's form: the
            # page comes back (post, redirect, get) saying what it did, and reloading it
            # shows that again without changing the set a second time.
            lead.goto(f"{base}/p/weather/labels")
            lead.fill("#form-add input[name=name]", "hail")
            with lead.expect_navigation():
                lead.click("#form-add button[type=submit]")
            assert "/p/weather/labels?notice=" in lead.url, lead.inner_text("body")[:1500]
            assert "class hail was added" in lead.inner_text("#labels-message")
            lead.reload()
            assert "class hail was added" in lead.inner_text("#labels-message")
            assert [v.version for v in weather.store.label_sets.versions()] == [1, 2]
            assert weather.store.label_sets.classes(())[-1] == "hail"
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    signed = set(web.audit.entries()["action"])  # the platform's: sign-ins
    labeled = set(program.audit.entries()["action"])  # the program's own: its labels
    assert {"web.login", "web.logout"} <= signed
    assert {"label.answer", "label.revise", "label.adjudicate"} <= labeled
