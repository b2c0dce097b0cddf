"""Load on the web app: N concurrent HTTP annotators on loopback, against SQLite and Postgres.

    .venv/bin/python benchmarks/web_load.py [--clients 50] [--answers 20] [--overlap 2]
        [--backends sqlite,postgres] [--postgres-admin-url postgresql+psycopg2://...]

For each backend: a fresh platform database with `clients` annotators (scrypt passwords), the
same people in the digits program's own store, and there `clients * answers / overlap` digit
tasks that each want `overlap` answers, so the round holds exactly `clients * answers` slots.
`feature-platform serve` runs in its own process (one uvicorn worker, as `make ui` starts it).
Each client is an asyncio task with its own cookie jar: it signs in, then repeats "next task"
(GET /p/digits/annotate: lease or show the held task) and "submit" (POST
/p/digits/annotate/answer with the page's CSRF token) until the queue has nothing left for it.
Timings are wall-clock per request, seen by the client.

Then the stores are checked: answers stored vs accepted (303) submissions, duplicate
(task, annotator) answers, tasks holding more answers than they want, and tasks left unfilled.

Reference, in the same run: the same lease + submit calls made directly on `TaskQueue` from
`clients` threads (no HTTP, no sessions, no templates); the ratio says what the web layer costs.
`web_1_client` is one client alone (2 x answers tasks, overlap 1): a request's own time, with
nobody queued in front of it.
The last line printed is one JSON document with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from feature_platform.catalog import digits  # noqa: E402
from feature_platform.feature_store import FeatureStore  # noqa: E402
from feature_platform.governance.credentials import Credentials  # noqa: E402
from feature_platform.governance.identity import SYSTEM  # noqa: E402
from feature_platform.governance.roles import AnnotatorRegistry  # noqa: E402
from feature_platform.labeling.queue import TaskSpec  # noqa: E402
from feature_platform.programs.project import open_program_store  # noqa: E402
from feature_platform.settings import Settings  # noqa: E402

PASSWORD = "load test password"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
TASK = re.compile(r'data-task-id="([0-9a-f]+)"')
SAMPLE = re.compile(r"sample (\d+)</span>")
PROGRAM = "/p/digits"  # the shipped digits program's pages


def _settings(home: Path, database_url: str | None) -> Settings:
    embedded = Settings.under(home)
    if database_url is None:
        return embedded
    return Settings(
        home=embedded.home,
        database_url=database_url,
        offline_dir=embedded.offline_dir,
        mlflow_tracking_uri=embedded.mlflow_tracking_uri,
        mlflow_artifact_dir=embedded.mlflow_artifact_dir,
    )


def _prepare(settings: Settings, clients: int, answers: int, overlap: int) -> FeatureStore:
    """The digits program's store, with the round to label; sign-ins in the platform's."""
    platform = FeatureStore(settings)
    registry = AnnotatorRegistry(platform.engine)
    credentials = Credentials(platform.engine, registry)
    store = open_program_store(settings, "digits")
    for i in range(clients):  # registered by the platform's own (admin) identity
        registry.add(f"a{i:03d}", "annotator", actor=SYSTEM)
        credentials.set_password(f"a{i:03d}", PASSWORD, actor=SYSTEM)
        store.queue.registry.add(f"a{i:03d}", "annotator", actor=SYSTEM)
    platform.engine.dispose()
    n_tasks = clients * answers // overlap
    specs = [
        TaskSpec(
            sample_key=str(k),
            strategy="margin",
            score=0.5,
            reason="load test",
            feature_version="digits@v1",
            features_shown={f"p{i}": float((k + i) % 17) / 16 for i in range(64)},
            top_classes=[("3", 0.4), ("8", 0.3), ("5", 0.1)],
        )
        for k in range(n_tasks)
    ]
    store.queue.create_batch("round-001", specs, digits.CLASSES, answers_needed=overlap)
    return store


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def _client(base: str, name: str, timings: dict[str, list[float]], sent: list) -> None:  # noqa: ANN001
    import httpx

    async with httpx.AsyncClient(base_url=base, follow_redirects=False, timeout=120) as http:
        page = await http.get("/login")
        token = CSRF.search(page.text).group(1)
        signed = await http.post("/login", data={"csrf": token, "name": name, "password": PASSWORD})
        assert signed.status_code == 303, signed.text
        while True:
            started = time.perf_counter()
            page = await http.get(f"{PROGRAM}/annotate")
            timings["next"].append(time.perf_counter() - started)
            task = TASK.search(page.text)
            if task is None:
                return
            label = str(int(SAMPLE.search(page.text).group(1)) % 10)
            form = {"csrf": CSRF.search(page.text).group(1), "task_id": task.group(1)}
            started = time.perf_counter()
            answered = await http.post(f"{PROGRAM}/annotate/answer", data=form | {"label": label})
            timings["submit"].append(time.perf_counter() - started)
            sent.append((task.group(1), name, answered.status_code))


async def _swarm(base: str, clients: int) -> tuple[dict[str, list[float]], list, float]:
    timings: dict[str, list[float]] = {"next": [], "submit": []}
    sent: list = []
    started = time.perf_counter()
    await asyncio.gather(*(_client(base, f"a{i:03d}", timings, sent) for i in range(clients)))
    return timings, sent, time.perf_counter() - started


def _check(store: FeatureStore, overlap: int) -> dict[str, int]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT task_id, annotator, COUNT(*) AS n FROM labeling_answers "
                "GROUP BY task_id, annotator"
            )
        ).all()
        per_task = conn.execute(
            sa.text(
                "SELECT t.id, t.answers_needed, COUNT(a.id) AS n FROM labeling_tasks t "
                "LEFT JOIN labeling_answers a ON a.task_id = t.id GROUP BY t.id, t.answers_needed"
            )
        ).all()
    return {
        "stored": sum(r.n for r in rows),
        "duplicated": sum(r.n - 1 for r in rows if r.n > 1),
        "over_filled_tasks": sum(1 for r in per_task if r.n > r.answers_needed),
        "unfilled_tasks": sum(1 for r in per_task if r.n < r.answers_needed),
    }


def _percentiles(values: list[float]) -> dict[str, float]:
    ms = np.asarray(values) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
    }


def run_web(settings: Settings, clients: int, answers: int, overlap: int) -> dict:
    store = _prepare(settings, clients, answers, overlap)
    port = _free_port()
    env = os.environ | {
        "FP_HOME": str(settings.home),
        "FP_DATABASE_URL": settings.database_url,
        "FP_WEB_SECRET": uuid.uuid4().hex,
        "PYTHONPATH": str(ROOT),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "feature_platform.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        import httpx

        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "server did not start"
            time.sleep(0.2)
        timings, sent, elapsed = asyncio.run(_swarm(f"http://127.0.0.1:{port}", clients))
    finally:
        server.terminate()
        server.wait(timeout=30)
    accepted = sum(1 for _, _, status in sent if status == 303)
    checked = _check(store, overlap)
    store.engine.dispose()
    return {
        "next_task": _percentiles(timings["next"]),
        "submit": _percentiles(timings["submit"]),
        "sent": len(sent),
        "accepted": accepted,
        "refused": {
            str(s): sum(1 for *_, x in sent if x == s) for s in {x for *_, x in sent} if s != 303
        },
        "lost": accepted - checked["stored"] if accepted > checked["stored"] else 0,
        **checked,
        "answers_per_s": round(checked["stored"] / elapsed, 1),
        "elapsed_s": round(elapsed, 1),
    }


def run_direct(settings: Settings, clients: int, answers: int, overlap: int) -> dict:
    """The reference: the same lease + submit on TaskQueue from `clients` threads."""
    store = _prepare(settings, clients, answers, overlap)
    timings: dict[str, list[float]] = {"next": [], "submit": []}
    lock = threading.Lock()

    def work(name: str) -> None:
        while True:
            started = time.perf_counter()
            leased = store.queue.lease(name, 1, 600)
            took = time.perf_counter() - started
            with lock:
                timings["next"].append(took)
            if not leased:
                return
            started = time.perf_counter()
            store.queue.submit(leased[0].id, name, str(int(leased[0].sample_key) % 10))
            took = time.perf_counter() - started
            with lock:
                timings["submit"].append(took)

    threads = [threading.Thread(target=work, args=(f"a{i:03d}",)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    checked = _check(store, overlap)
    store.engine.dispose()
    return {
        "next_task": _percentiles(timings["next"]),
        "submit": _percentiles(timings["submit"]),
        **checked,
        "answers_per_s": round(checked["stored"] / elapsed, 1),
    }


def _postgres_database(admin_url: str) -> tuple[str, callable]:
    name = f"fp_webload_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return admin_url.rsplit("/", 1)[0] + f"/{name}", drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--answers", type=int, default=20, help="answers per client")
    parser.add_argument("--overlap", type=int, default=2, help="answers each task wants")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument(
        "--postgres-admin-url",
        default=os.environ.get(
            "FP_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    results: dict[str, dict] = {}
    for backend in args.backends.split(","):
        runs = (
            ("web", run_web, args.clients, args.answers, args.overlap),
            # One client alone: the time a request takes when nobody waits in front of it.
            ("web_1_client", run_web, 1, 2 * args.answers, 1),
            ("direct_queue", run_direct, args.clients, args.answers, args.overlap),
        )
        for kind, runner, clients, answers, overlap in runs:
            with tempfile.TemporaryDirectory() as home:
                drop = None
                url = None
                if backend == "postgres":
                    url, drop = _postgres_database(args.postgres_admin_url)
                try:
                    print(f"{backend} / {kind} ...", file=sys.stderr, flush=True)
                    results.setdefault(backend, {})[kind] = runner(
                        _settings(Path(home), url), clients, answers, overlap
                    )
                finally:
                    if drop is not None:
                        drop()
        web, direct = results[backend]["web"], results[backend]["direct_queue"]
        results[backend]["ratio_web_to_direct_p50"] = {
            op: round(web[op]["p50_ms"] / max(direct[op]["p50_ms"], 1e-3), 1)
            for op in ("next_task", "submit")
        }

    header = (
        f"{'backend':<9} {'path':<13} {'next p50':>9} {'next p99':>9} {'submit p50':>10} "
        f"{'submit p99':>10} {'stored':>6} {'sent':>5} {'lost':>4} {'dup':>4} {'over':>4} "
        f"{'ans/s':>6}"
    )
    print(header)
    print("-" * len(header))
    for backend, by_kind in results.items():
        for kind in ("web", "web_1_client", "direct_queue"):
            r = by_kind[kind]
            print(
                f"{backend:<9} {kind:<13} {r['next_task']['p50_ms']:>9} "
                f"{r['next_task']['p99_ms']:>9} {r['submit']['p50_ms']:>10} "
                f"{r['submit']['p99_ms']:>10} {r['stored']:>6} {r.get('accepted', r['stored']):>5} "
                f"{r.get('lost', 0):>4} {r['duplicated']:>4} {r['over_filled_tasks']:>4} "
                f"{r['answers_per_s']:>6}"
            )
        print(f"{backend}: web / direct p50 = {by_kind['ratio_web_to_direct_p50']}")
    print(
        json.dumps(
            {"clients": args.clients, "answers": args.answers, "overlap": args.overlap} | results
        )
    )


if __name__ == "__main__":
    main()
