"""POST /p/<program>/api/feedback: a downstream system's corrections, by API token."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from feature_platform.catalog import digits
from feature_platform.governance.credentials import Credentials
from feature_platform.governance.identity import SYSTEM
from feature_platform.store.db import utcnow
from feature_platform_tests.conftest import count_sample_reads
from feature_platform_tests.web.conftest import D, Web

URL = f"{D}/api/feedback"


def _token(web: Web, name: str) -> dict[str, str]:
    token = Credentials(web.state.store.engine).issue_token(name, "shop app", actor=SYSTEM)
    return {"Authorization": f"Bearer {token}"}


def test_feedback_api_takes_events_once_and_says_what_it_refused(web: Web) -> None:
    store = web.program("digits").store
    digits.bootstrap(store)
    holdout = set(store.sources.read(digits.HOLDOUT_SOURCE)["sample_id"].astype(str))
    key = next(str(k) for k in range(100) if str(k) not in holdout)
    body = {
        "system": "shop",
        "trust": 0.9,
        "review": True,
        "events": [
            {"event_id": "e1", "sample_key": key, "label": "3", "predicted": "8"},
            {"event_id": "e2", "sample_key": "nope", "label": "3"},
        ],
    }
    client = web.client()
    assert client.post(URL, json=body).status_code == 401  # no token
    assert client.post(URL, json=body, headers={"Authorization": "Bearer fpt_x"}).status_code == 401
    # A browser session is not enough: the API takes tokens only.
    signed_in = web.sign_in("lea")
    assert signed_in.post(URL, json=body).status_code == 401

    refused = client.post(URL, json=body, headers=_token(web, "ann"))  # an annotator
    assert refused.status_code == 403 and "may not import" in refused.json()["error"]

    lead = _token(web, "lea")
    response = client.post(URL, json=body, headers=lead)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["accepted"] == ["e1"] and report["duplicates"] == []
    assert report["quarantined"][0]["reason"].startswith("event 'e2': unknown sample key 'nope'")
    assert report["review_tasks"] == 1
    again = client.post(URL, json=body, headers=lead).json()
    assert (again["accepted"], again["duplicates"], again["review_tasks"]) == ([], ["e1"], 0)
    stored = store.machine_labels.labels(["feedback"])
    assert stored[["sample_key", "label", "source", "recorded_by"]].values.tolist() == [
        [key, "3", "feedback:shop", "lea"]
    ]
    assert [t.reason for t in store.queue.tasks(round_key="feedback-shop")] == [
        "feedback from shop: user corrected 8 -> 3"
    ]

    bad = client.post(
        URL, content=b"{not json", headers={**lead, "content-type": "application/json"}
    )
    assert bad.status_code == 400 and bad.json()["error"].startswith("The body is not valid JSON")
    assert client.post(URL, json={"system": "shop"}, headers=lead).status_code == 400
    assert client.post(URL, json={**body, "trust": 2}, headers=lead).status_code == 400
    assert client.post("/p/nope/api/feedback", json=body, headers=lead).status_code == 404

    Credentials(web.state.store.engine).revoke_tokens("lea", actor=SYSTEM)
    assert client.post(URL, json=body, headers=lead).status_code == 401


def test_a_request_does_work_for_its_events_only_and_sees_new_samples(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No table creation and no re-reading of every sample per request: the program's
    samples are read again only once a new snapshot arrived, whose samples are then taken."""
    store = web.program("digits").store
    digits.bootstrap(store)
    reads = count_sample_reads(store, monkeypatch)
    client, lead = web.client(), _token(web, "lea")
    new = "90000"  # not a sample yet

    def send(event_id: str) -> dict:
        event = {"event_id": event_id, "sample_key": new, "label": "3"}
        response = client.post(URL, json={"system": "shop", "events": [event]}, headers=lead)
        assert response.status_code == 200, response.text
        return response.json()

    first = send("e1")
    assert first["accepted"] == [] and "unknown sample key '90000'" in str(first["quarantined"])
    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        statements.append(statement)

    sa.event.listen(sa.Engine, "before_cursor_execute", seen)
    try:
        assert send("e2")["accepted"] == []
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", seen)
    assert reads == {"offline": 1, "sources": 1}  # the second request read no sample
    assert not [s for s in statements if "PRAGMA" in s]  # and created no table

    fsv = store.registry.get("digits", "v1")
    row = pd.DataFrame({"sample_id": [int(new)], "event_timestamp": [pd.Timestamp(utcnow())]})
    row[fsv.feature_names] = 0.5
    store.ingest("digits@v1", row)  # the sample arrives
    assert send("e3")["accepted"] == ["e3"]
    assert reads == {"offline": 2, "sources": 2}
    assert store.machine_labels.labels(["feedback"])["sample_key"].tolist() == [new]
