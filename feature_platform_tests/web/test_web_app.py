"""The web app through Starlette's TestClient, on real stores: every route for every role, and
every bad input gets a clear 4xx and changes nothing."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
import sqlalchemy as sa

from feature_platform.catalog import digits
from feature_platform.governance.credentials import credentials
from feature_platform.store.db import utcnow
from feature_platform.web.app import WebConfig
from feature_platform.web.sessions import sessions
from feature_platform_tests.web.conftest import PASSWORD, D, Web, digit_specs, login, make_web

GET_ROUTES = [
    "/",
    f"{D}/annotate",
    f"{D}/review",
    f"{D}/dashboard",
    f"{D}/lead",
    f"{D}/labels",
    f"{D}/dashboard/learning.png",
    f"{D}/dashboard/throughput.png",
]
POST_ROUTES = [
    "/logout",
    f"{D}/annotate/answer",
    f"{D}/annotate/skip",
    f"{D}/annotate/unsure",
    f"{D}/annotate/undo",
    f"{D}/annotate/revise",
    f"{D}/annotate/renew",
    f"{D}/review/adjudicate",
    f"{D}/lead/alias",
    f"{D}/lead/publish",
    f"{D}/labels/change",
]
FORM = "application/x-www-form-urlencoded"


def _answers(web: Web) -> int:
    return len(web.queue.answers())


def _lease_task(web: Web, client) -> str:  # noqa: ANN001
    page = client.get(f"{D}/annotate")
    assert page.status_code == 200, page.text
    return page.text.split('data-task-id="', 1)[1].split('"', 1)[0]


def test_nothing_but_sign_in_and_health_without_a_session(web: Web) -> None:
    client = web.client()
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/login").status_code == 200
    task_id = web.queue.tasks()[0].id
    for path in [*GET_ROUTES, f"{D}/sample/{task_id}.png"]:
        response = client.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith("/login")
    for path in POST_ROUTES:
        assert client.post(path, data={"task_id": task_id, "label": "3"}).status_code == 401
    assert _answers(web) == 0 and not web.queue.leases()


def test_role_matrix(web: Web) -> None:
    """Viewers see dashboards and the label set only; annotators also label; reviewers also
    adjudicate; leads also publish, move aliases and change the label set. The server refuses
    the rest (403) and records nothing."""
    expected = {
        "vic": {f"{D}/dashboard": 200, f"{D}/annotate": 403, f"{D}/review": 403, f"{D}/lead": 403},
        "ann": {f"{D}/annotate": 200, f"{D}/review": 403, f"{D}/lead": 403, f"{D}/dashboard": 200},
        "rev": {f"{D}/review": 200, f"{D}/annotate": 200, f"{D}/lead": 403, f"{D}/dashboard": 200},
        "lea": {f"{D}/dashboard": 200, f"{D}/lead": 200, f"{D}/review": 200},
    }
    forbidden = {
        "vic": [
            f"{D}/annotate/answer",
            f"{D}/annotate/skip",
            f"{D}/review/adjudicate",
            f"{D}/lead/alias",
            f"{D}/labels/change",
        ],
        "ann": [
            f"{D}/review/adjudicate",
            f"{D}/lead/alias",
            f"{D}/lead/publish",
            f"{D}/labels/change",
        ],
        "rev": [f"{D}/lead/alias", f"{D}/lead/publish", f"{D}/labels/change"],
        "lea": [],
    }
    task_id = web.queue.tasks()[0].id
    for name, pages in expected.items():
        client = web.sign_in(name)
        home = client.get("/")  # every program is open to everyone here (no pools declared)
        assert home.status_code == 200
        assert (
            f'href="{D}/annotate"' in home.text if name != "vic" else "/annotate" not in home.text
        )
        assert 'id="program-weather"' in home.text
        for path, status in {**pages, f"{D}/labels": 200}.items():
            assert client.get(path).status_code == status, (name, path)
        token = web.csrf(client)
        for path in forbidden[name]:
            data = {"csrf": token, "task_id": task_id, "label": "3", "name": "digits"}
            data |= {"alias": "training", "version": "v2", "reason": "r"}
            assert client.post(path, data=data).status_code == 403, (name, path)
        held = {lease.task_id for lease in web.queue.leases(name)}
        not_mine = next(t.id for t in web.queue.tasks() if t.id not in held)
        status = 403 if name in ("vic", "ann") else 200  # a task someone else works on
        assert client.get(f"{D}/sample/{not_mine}.png").status_code == status, name
        client.post("/logout", data={"csrf": token})
    assert _answers(web) == 0 and web.queue.passes().empty
    assert web.program().adjudications.all().empty
    assert web.program().store.label_sets.versions() == []


def test_passwords_are_scrypt_hashes_and_sign_in_is_rate_limited(web: Web) -> None:
    with web.state.store.engine.connect() as conn:
        rows = conn.execute(sa.select(credentials)).all()
    assert {r.name for r in rows} == {"ann", "bob", "rev", "lea", "vic"}
    assert all(PASSWORD.encode() not in bytes(r.hash) and len(bytes(r.salt)) == 16 for r in rows)
    assert len({bytes(r.salt) for r in rows}) == len(rows)  # a fresh salt each

    client = web.client()
    assert login(client, "ann", "wrong password").status_code == 401
    token = client.get("/login").text.split('name="csrf" value="')[1].split('"')[0]
    assert client.post("/login", data={"name": "ann", "password": PASSWORD}).status_code == 403
    assert client.post("/login", data={"csrf": token + "x", "name": "ann"}).status_code == 403
    for _ in range(4):
        assert login(client, "ann", "wrong again").status_code == 401
    blocked = login(client, "ann", PASSWORD)  # right password, but throttled
    assert blocked.status_code == 429 and "Retry-After" in blocked.headers
    actions = web.state.audit.entries(actor="ann")["action"].tolist()
    assert actions.count("web.login_failed") == 5 and "web.login_throttled" in actions
    assert "web.login" not in actions
    # Another person on the same address is not locked out by ann's five failures.
    assert web.sign_in("bob").get(f"{D}/annotate").status_code == 200


def test_set_password_reads_stdin_never_argv(tmp_path) -> None:  # noqa: ANN001
    home = tmp_path / "cli"
    env = {"FP_HOME": str(home), "PATH": "/usr/bin:/bin"}
    run = [sys.executable, "-m", "feature_platform.cli"]

    def cli(user: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*run, *args], env=env | {"FP_USER": user}, input=stdin, text=True, capture_output=True
        )

    assert cli("adm", "annotators", "add", "adm", "--role", "admin").returncode == 0
    assert cli("adm", "annotators", "add", "zoe").returncode == 0
    assert cli("adm", "annotators", "add", "yan").returncode == 0
    done = cli("adm", "annotators", "set-password", "zoe", stdin="a long enough secret\n")
    assert done.returncode == 0, done.stderr
    short = cli("zoe", "annotators", "set-password", "zoe", stdin="short\n")
    assert short.returncode == 2 and "too short" in short.stderr
    other = cli("yan", "annotators", "set-password", "zoe", stdin="yan's choice of secret\n")
    assert other.returncode == 2 and "may not set the password for 'zoe'" in other.stderr
    # A program registers its own people (the roles its queue checks): zoe labels digits only.
    assert (
        cli("adm", "--program", "digits", "annotators", "add", "adm", "--role", "admin").returncode
        == 0
    )
    assert cli("adm", "--program", "digits", "annotators", "add", "zoe").returncode == 0
    web = make_web(home, batch=())
    client = web.client()
    assert login(client, "zoe", "a long enough secret").status_code == 303
    home_page = client.get("/").text
    assert 'id="program-digits"' in home_page and 'id="program-weather"' not in home_page
    assert client.get("/p/weather/annotate").status_code == 404
    assert login(web.client(), "zoe", "yan's choice of secret").status_code == 401
    changes = web.state.audit.entries(action="person.set_password")
    assert changes[changes["target"] == "zoe"]["actor"].tolist() == ["adm"]
    # A new password signs zoe out everywhere: the cookie she had stops working.
    assert (
        cli("zoe", "annotators", "set-password", "zoe", stdin="a new long secret\n").returncode == 0
    )
    assert client.get("/").status_code in (302, 303)
    assert login(web.client(), "zoe", "a new long secret").status_code == 303


def test_annotator_page_shows_the_task_with_context_and_records_one_answer(web: Web) -> None:
    client = web.sign_in("ann")
    page = client.get(f"{D}/annotate")
    assert page.status_code == 200
    text = page.text
    for shown in [
        "The model is torn between 3 (41 %) and 8 (38 %).",
        "digits@v1",
        "digits-classifier/1",
        "Which digit (0-9) is written in the picture?",
        "0 of 3 tasks complete",
    ]:
        assert shown in text, shown
    task_id = _lease_task(web, client)
    assert [lease.task_id for lease in web.queue.leases("ann")] == [task_id]
    picture = client.get(f"{D}/sample/{task_id}.png")
    assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")
    assert page.headers["content-security-policy"].startswith("default-src 'self'")

    token = web.csrf(client, f"{D}/annotate")
    answered = client.post(
        f"{D}/annotate/answer", data={"csrf": token, "task_id": task_id, "label": "3"}
    )
    assert answered.status_code == 303
    stored = web.queue.answers()
    assert stored[["task_id", "annotator", "label"]].values.tolist() == [[task_id, "ann", "3"]]
    assert stored["time_spent_s"].iloc[0] >= 0
    audit = web.audit.entries(actor="ann", action="label.answer")
    assert audit["target"].tolist() == [f"task:{task_id}"]

    # Double submit (and a replay of the same form) changes nothing.
    again = client.post(
        f"{D}/annotate/answer", data={"csrf": token, "task_id": task_id, "label": "3"}
    )
    assert again.status_code == 409 and "already answered" in again.text
    other = client.post(
        f"{D}/annotate/answer", data={"csrf": token, "task_id": task_id, "label": "8"}
    )
    assert other.status_code == 409
    assert _answers(web) == 1
    # The next page is the next task, with the undo offer for the last answer.
    next_page = client.get(f"{D}/annotate").text
    assert "1 of 3 tasks complete" in next_page and 'id="undo"' in next_page


def test_bad_inputs_get_a_clear_4xx_and_change_nothing(web: Web) -> None:
    client = web.sign_in("ann")
    task_id = _lease_task(web, client)
    token = web.csrf(client, f"{D}/annotate")
    other = next(t.id for t in web.queue.tasks() if t.id != task_id)
    cases = [
        ({"csrf": "forged", "task_id": task_id, "label": "3"}, 403, "CSRF"),
        ({"task_id": task_id, "label": "3"}, 403, "CSRF"),
        ({"csrf": token, "task_id": "f" * 32, "label": "3"}, 404, "No task"),
        ({"csrf": token, "task_id": task_id, "label": "42"}, 422, "not one of"),
        ({"csrf": token, "task_id": task_id, "label": ""}, 400, "missing"),
        ({"csrf": token, "task_id": other, "label": "3"}, 409, "no longer leased"),
    ]
    for data, status, words in cases:
        response = client.post(f"{D}/annotate/answer", data=data)
        assert response.status_code == status, (data, response.text)
        assert words in response.text
    huge = client.post(
        f"{D}/annotate/answer",
        content=b"csrf=" + token.encode() + b"&label=3&task_id=" + b"a" * (10 * 1024 * 1024),
        headers={"content-type": FORM},
    )
    assert huge.status_code == 413
    json_body = client.post(f"{D}/annotate/answer", json={"csrf": token, "task_id": task_id})
    assert json_body.status_code == 415
    assert _answers(web) == 0
    assert [lease.task_id for lease in web.queue.leases("ann")] == [task_id]
    # Someone else's sample picture is not shown to an annotator.
    assert client.get(f"{D}/sample/{other}.png").status_code == 403
    assert client.get(f"{D}/dashboard?round=round-999").status_code == 404


def test_expired_and_ended_sessions_are_refused(web: Web) -> None:
    client = web.sign_in("ann")
    token = web.csrf(client, f"{D}/annotate")
    with web.state.store.engine.begin() as conn:  # an hour without a request
        conn.execute(sessions.update().values(last_seen=utcnow() - timedelta(hours=1)))
    assert client.get(f"{D}/annotate").headers["location"].startswith("/login")
    assert client.post(f"{D}/annotate/answer", data={"csrf": token}).status_code == 401

    client = web.sign_in("ann")
    task_id = _lease_task(web, client)
    token = web.csrf(client, f"{D}/annotate")
    cookie = client.cookies.get("fp_session")
    assert client.post("/logout", data={"csrf": token}).status_code == 303
    assert not web.queue.leases("ann")  # the lease went back on sign-out
    assert "signed_out" in [event.event for event in web.queue.history(task_id)]
    replay = web.client()
    replay.cookies.set("fp_session", cookie)  # the old cookie, replayed
    form = {"csrf": token, "task_id": task_id, "label": "3"}
    assert replay.post(f"{D}/annotate/answer", data=form).status_code == 401
    assert replay.get(f"{D}/annotate").status_code == 303
    # A tampered cookie is no session either.
    forged = web.client()
    forged.cookies.set("fp_session", cookie[:-2] + "xx")
    assert forged.get(f"{D}/annotate").status_code == 303
    assert _answers(web) == 0


def test_a_lease_taken_over_after_expiry_refuses_the_late_answer(web: Web) -> None:
    client = web.sign_in("ann")
    task_id = _lease_task(web, client)
    token = web.csrf(client, f"{D}/annotate")
    later = utcnow() + timedelta(seconds=web.state.config.lease_seconds + 1)
    web.queue.requeue_expired(now=later)
    taken = web.queue.lease("bob", limit=3, now=later)
    assert task_id in [t.id for t in taken]
    late = client.post(
        f"{D}/annotate/answer", data={"csrf": token, "task_id": task_id, "label": "3"}
    )
    assert late.status_code == 409 and "no longer leased" in late.text
    renew = client.post(f"{D}/annotate/renew", data={"csrf": token, "task_id": task_id})
    assert renew.status_code == 409
    assert _answers(web) == 0
    assert {lease.annotator for lease in web.queue.leases(now=later)} == {"bob"}


def test_renew_skip_and_unsure(web: Web) -> None:
    client = web.sign_in("ann")
    task_id = _lease_task(web, client)
    token = web.csrf(client, f"{D}/annotate")
    before = web.queue.leases("ann")[0].expires_at
    renewed = client.post(f"{D}/annotate/renew", data={"csrf": token, "task_id": task_id})
    assert renewed.status_code == 200
    assert web.queue.leases("ann")[0].expires_at >= before
    no_reason = client.post(f"{D}/annotate/skip", data={"csrf": token, "task_id": task_id})
    assert no_reason.status_code == 400
    skipped = client.post(
        f"{D}/annotate/skip", data={"csrf": token, "task_id": task_id, "reason": "not a digit"}
    )
    assert skipped.status_code == 303 and not web.queue.leases("ann")
    again = client.post(
        f"{D}/annotate/skip", data={"csrf": token, "task_id": task_id, "reason": "x"}
    )
    assert again.status_code == 409
    second = _lease_task(web, client)
    assert second != task_id  # a skipped task is not offered to the same person again
    unsure = client.post(f"{D}/annotate/unsure", data={"csrf": token, "task_id": second})
    assert unsure.status_code == 303
    passes = web.queue.passes()
    assert passes[["task_id", "annotator", "outcome", "reason"]].values.tolist() == [
        [task_id, "ann", "skip", "not a digit"],
        [second, "ann", "unsure", ""],
    ]
    actions = web.audit.entries(actor="ann")["action"].tolist()
    assert "label.skip" in actions and "label.unsure" in actions
    assert _answers(web) == 0


def test_undo_within_the_grace_period_records_a_revision(tmp_path) -> None:  # noqa: ANN001
    web = make_web(tmp_path / "fp", config=WebConfig(undo_seconds=60))
    client = web.sign_in("ann")
    task_id = _lease_task(web, client)
    token = web.csrf(client, f"{D}/annotate")
    client.post(f"{D}/annotate/answer", data={"csrf": token, "task_id": task_id, "label": "3"})
    other = next(t.id for t in web.queue.tasks() if t.id != task_id)
    assert (
        client.post(f"{D}/annotate/undo", data={"csrf": token, "task_id": other}).status_code == 409
    )
    undo = client.post(f"{D}/annotate/undo", data={"csrf": token, "task_id": task_id})
    assert undo.status_code == 303
    page = client.get(undo.headers["location"])
    assert "Changing your answer 3" in page.text and f"{D}/annotate/revise" in page.text
    assert client.get(f"{D}/sample/{task_id}.png").status_code == 200
    revised = client.post(
        f"{D}/annotate/revise", data={"csrf": token, "task_id": task_id, "label": "8"}
    )
    assert revised.status_code == 303
    history = web.queue.answer_history(task_id, "ann")
    assert [(a.label, a.revision) for a in history] == [("3", 1), ("8", 2)]
    assert web.queue.answers()["label"].tolist() == ["8"]  # the revision is in force
    assert len(web.audit.entries(actor="ann", action="label.revise")) == 1

    late = make_web(tmp_path / "late", config=WebConfig(undo_seconds=0))
    client = late.sign_in("ann")
    task_id = _lease_task(late, client)
    token = late.csrf(client, f"{D}/annotate")
    client.post(f"{D}/annotate/answer", data={"csrf": token, "task_id": task_id, "label": "3"})
    assert (
        client.post(f"{D}/annotate/undo", data={"csrf": token, "task_id": task_id}).status_code
        == 409
    )
    refused = client.post(
        f"{D}/annotate/revise", data={"csrf": token, "task_id": task_id, "label": "8"}
    )
    assert refused.status_code == 409 and "grace period" in refused.text
    assert [a.label for a in late.queue.answer_history(task_id)] == ["3"]


def test_html_in_free_text_is_escaped_on_every_page(web: Web) -> None:
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    client = web.sign_in("ann")
    task_id = _lease_task(web, client)
    token = web.csrf(client, f"{D}/annotate")
    assert (
        client.post(f"{D}/annotate/skip", data={"csrf": token, "task_id": task_id, "reason": evil})
    ).status_code == 303
    bad_login = login(web.client(), evil, "whatever")
    assert bad_login.status_code == 401 and "<script>" not in bad_login.text
    lead = web.sign_in("lea")
    pages = [lead.get(f"{D}/lead"), lead.get(f"{D}/dashboard"), client.get(f"{D}/annotate")]
    pages.append(client.get(f"{D}/annotate/answer?x=" + evil))  # 405 page
    assert "&lt;script&gt;" in pages[0].text
    for page in pages:
        assert "<script>alert" not in page.text and "<img src=x" not in page.text


def test_reviewer_sees_disagreement_with_accuracies_and_adjudicates(tmp_path) -> None:  # noqa: ANN001
    web = make_web(tmp_path / "fp", batch=())
    web.queue.create_batch("round-001", digit_specs([5, 6]), digits.CLASSES, answers_needed=2)
    for name, labels in {"ann": ("3", "6"), "bob": ("8", "6")}.items():
        client = web.sign_in(name)
        for _ in range(2):
            task_id = _lease_task(web, client)
            task = web.queue.get(task_id)
            label = labels[0] if task.sample_key == "5" else labels[1]
            token = web.csrf(client, f"{D}/annotate")
            form = {"csrf": token, "task_id": task_id, "label": label}
            assert client.post(f"{D}/annotate/answer", data=form).status_code == 303
    conflict = web.queue.find("round-001", "5")
    reviewer = web.sign_in("rev")
    page = reviewer.get(f"{D}/review").text
    assert conflict.id in page and "(1 left)" in page
    assert "ann" in page and "bob" in page and "Dawid" in page and "3 (41 %)" in page
    # Two shared samples are too few to estimate people from: said, not made up.
    assert "Annotator accuracy not estimated" in page
    token = web.csrf(reviewer, f"{D}/review")
    bad = reviewer.post(
        f"{D}/review/adjudicate", data={"csrf": token, "task_id": conflict.id, "label": "x"}
    )
    assert bad.status_code == 422
    decided = reviewer.post(
        f"{D}/review/adjudicate", data={"csrf": token, "task_id": conflict.id, "label": "3"}
    )
    assert decided.status_code == 303
    replay = reviewer.post(
        f"{D}/review/adjudicate", data={"csrf": token, "task_id": conflict.id, "label": "3"}
    )
    assert replay.status_code == 409
    assert web.program().adjudications.all()[["task_id", "label", "reviewer"]].values.tolist() == [
        [conflict.id, "3", "rev"]
    ]
    assert "No disagreeing answers" in reviewer.get(f"{D}/review").text
    assert len(web.audit.entries(action="label.adjudicate")) == 1


def test_lead_moves_an_alias_and_every_move_is_audited(tmp_path) -> None:  # noqa: ANN001
    web = make_web(tmp_path / "fp", batch=())
    digits.bootstrap(web.program().store)
    lead = web.sign_in("lea")
    page = lead.get(f"{D}/lead").text
    assert "digits" in page and "training" in page
    token = web.csrf(lead, f"{D}/lead")
    moved = lead.post(
        f"{D}/lead/alias",
        data={"csrf": token, "name": "digits", "alias": "training", "version": "v2"},
    )
    assert moved.status_code == 303
    assert web.program().store.registry.aliases("digits")["training"] == "v2"
    unknown = lead.post(
        f"{D}/lead/alias",
        data={"csrf": token, "name": "digits", "alias": "training", "version": "v9"},
    )
    assert unknown.status_code == 422
    assert web.program().store.registry.aliases("digits")["training"] == "v2"
    moves = web.audit.entries(actor="lea", action="feature_set.alias")
    assert moves["target"].tolist() == ["digits@training"]
    assert moves["detail"].iloc[0]["via"] == "session"  # the core audited the signed-in lead


def test_dashboard_shows_queue_health_and_charts(web: Web) -> None:
    ann = web.sign_in("ann")
    _lease_task(web, ann)
    viewer = web.sign_in("rev")
    page = viewer.get(f"{D}/dashboard")
    assert page.status_code == 200
    assert "round-001" in page.text and "ann," in page.text  # oldest lease holder
    assert "no model trained yet" in page.text
    for chart in (f"{D}/dashboard/learning.png", f"{D}/dashboard/throughput.png?round=round-001"):
        image = viewer.get(chart)
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG")


@pytest.mark.postgres
def test_answer_flow_on_postgres(tmp_path, postgres_url: str) -> None:  # noqa: ANN001
    web = make_web(tmp_path / "fp", database_url=postgres_url, config=WebConfig())
    client = web.sign_in("ann")
    task_id = _lease_task(web, client)
    token = web.csrf(client, f"{D}/annotate")
    form = {"csrf": token, "task_id": task_id, "label": "3"}
    assert client.post(f"{D}/annotate/answer", data=form).status_code == 303
    assert client.post(f"{D}/annotate/answer", data=form).status_code == 409
    assert _answers(web) == 1
    assert "1 of 3 tasks complete" in client.get(f"{D}/annotate").text
    lead = web.sign_in("lea")
    for page in (f"{D}/dashboard", f"{D}/review", f"{D}/lead", f"{D}/dashboard/throughput.png"):
        assert lead.get(page).status_code == 200, page
    web.state.store.engine.dispose()


def test_sign_in_returns_only_to_a_page_of_this_site(web: Web) -> None:
    for target, expected in [
        (f"{D}/review", f"{D}/review"),
        ("//evil.example", "/"),
        ("/\\evil", "/"),
    ]:
        client = web.client()
        token = client.get("/login").text.split('name="csrf" value="')[1].split('"')[0]
        form = {"csrf": token, "name": "rev", "password": PASSWORD, "next": target}
        assert client.post("/login", data=form).headers["location"] == expected
