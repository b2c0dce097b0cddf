"""A web app over real stores (SQLite by default) serving the shipped programs (digits and
weather, each on its own stores) with people, passwords and a batch of digit tasks, and helpers
to sign in the way a browser does (cookie + the form's CSRF token)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from sklearn.datasets import load_digits
from starlette.testclient import TestClient

from feature_platform.catalog import PROJECT_DIR, digits, weather
from feature_platform.governance.credentials import Credentials
from feature_platform.governance.identity import SYSTEM
from feature_platform.governance.roles import AnnotatorRegistry
from feature_platform.labeling.queue import TaskSpec
from feature_platform.programs.project import ProgramDefinition, load_project
from feature_platform.settings import Settings
from feature_platform.web.app import WebConfig, create_app

PASSWORD = "correct horse battery"
PEOPLE = {
    "ann": "annotator",
    "bob": "annotator",
    "rev": "reviewer",
    "lea": "lead",
    "vic": "viewer",
}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
D = "/p/digits"  # the digits program's pages
W = "/p/weather"


def digit_specs(keys: list[int], model_version: str | None = "digits-classifier/1") -> list:
    """Tasks as the round assets make them: the pixels shown and the model's top classes."""
    data = load_digits()
    specs = []
    for key in keys:
        shown = {f"p{i}": float(v) / 16 for i, v in enumerate(data.data[key])}
        specs.append(
            TaskSpec(
                sample_key=str(key),
                strategy="margin",
                score=0.9,
                reason="margin: the model hesitates between 3 (0.41) and 8 (0.38), a margin "
                "of 0.03; rank 1 of 900 unlabeled samples",
                feature_version="digits@v1",
                model_version=model_version,
                features_shown=shown,
                top_classes=[("3", 0.41), ("8", 0.38), ("5", 0.11)],
            )
        )
    return specs


def weather_specs(days: list[int]) -> list:
    """Weather tasks: the day's measurements shown as a table of feature values."""
    specs = []
    for day in days:
        specs.append(
            TaskSpec(
                sample_key=f"2013-01-{day:02d}",
                strategy="margin",
                score=0.5,
                reason="margin: the model hesitates between rain (0.45) and sun (0.40)",
                feature_version="weather@v1",
                model_version=None,
                features_shown={
                    "precipitation": 0.25 * day,
                    "temp_max": 0.1 * day,
                    "temp_min": -0.05 * day,
                    "wind": 0.3,
                },
                top_classes=[("rain", 0.45), ("sun", 0.40), ("fog", 0.1)],
            )
        )
    return specs


@dataclass
class Web:
    app: object
    settings: Settings
    home: Path

    @property
    def state(self):  # noqa: ANN201
        return self.app.state.web

    def program(self, name: str = "digits"):  # noqa: ANN201
        return self.state.programs[name]

    @property
    def queue(self):  # noqa: ANN201
        """The digits program's own queue."""
        return self.program("digits").store.queue

    @property
    def audit(self):  # noqa: ANN201
        """The digits program's audit log (label actions); sign-ins are in `state.audit`."""
        return self.program("digits").audit

    def client(self) -> TestClient:
        return TestClient(self.app, follow_redirects=False)

    def sign_in(self, name: str, password: str = PASSWORD) -> TestClient:
        client = self.client()
        response = login(client, name, password)
        assert response.status_code == 303, response.text
        return client

    def csrf(self, client: TestClient, page: str = "/") -> str:
        return CSRF.search(client.get(page).text).group(1)


def login(client: TestClient, name: str, password: str):  # noqa: ANN201
    token = CSRF.search(client.get("/login").text).group(1)
    return client.post("/login", data={"csrf": token, "name": name, "password": password})


def shipped_programs(**overrides) -> list[ProgramDefinition]:  # noqa: ANN003
    return [p.with_overrides(**overrides) for p in load_project(PROJECT_DIR)]


def make_web(
    home: Path,
    database_url: str | None = None,
    config: WebConfig | None = None,
    batch=(0, 1, 2),
    people: dict[str, str] | None = None,
    programs: list[ProgramDefinition] | None = None,
) -> Web:
    settings = Settings.under(home)
    if database_url is not None:
        settings = Settings(
            home=settings.home,
            database_url=database_url,
            offline_dir=settings.offline_dir,
            mlflow_tracking_uri=settings.mlflow_tracking_uri,
            mlflow_artifact_dir=settings.mlflow_artifact_dir,
        )
    app = create_app(
        settings,
        secret="test-secret-" + "x" * 32,
        config=config or WebConfig(),
        programs=programs if programs is not None else shipped_programs(),
    )
    web = Web(app, settings, home)
    add_people(web, people or PEOPLE)
    if batch:
        web.queue.create_batch("round-001", digit_specs(list(batch)), digits.CLASSES)
    return web


def add_people(web: Web, people: dict[str, str]) -> None:
    """Sign-in accounts in the platform database, and the same people in every program's own
    registry (the queue of each program checks who may label there)."""
    registry = AnnotatorRegistry(web.state.store.engine)
    credentials = Credentials(web.state.store.engine, registry)
    for name, role in people.items():  # set up by the platform's own (admin) identity
        registry.add(name, role, actor=SYSTEM)
        credentials.set_password(name, PASSWORD, actor=SYSTEM)
        for program in web.state.programs.values():
            program.store.queue.registry.add(name, role, actor=SYSTEM)


def weather_batch(web: Web, days=(1, 2, 3)) -> None:  # noqa: ANN001
    web.program("weather").store.queue.create_batch(
        "round-001", weather_specs(list(days)), weather.CLASSES
    )


@pytest.fixture
def web(tmp_path: Path) -> Web:
    return make_web(tmp_path / "fp")
