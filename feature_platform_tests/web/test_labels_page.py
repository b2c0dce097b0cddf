"""The Labels page: every program member sees the label set versions and the classes in force;
leads and admins change the set through its forms (the core's `evolve`, as themselves), and
everyone else's POST is refused by the core with nothing changed."""

from __future__ import annotations

import re

import pytest

from feature_platform.catalog import digits

from .conftest import D, Web

LABELS = f"{D}/labels"
CHANGE = f"{D}/labels/change"
BUTTON = re.compile(r'<button type="submit" name="label" value="([^"]+)"')


def _change(web: Web, who: str, **fields: str):  # noqa: ANN202
    client = web.sign_in(who)
    token = web.csrf(client, LABELS)
    return client, client.post(CHANGE, data={"csrf": token, **fields})


def _made(client, response):  # noqa: ANN001, ANN202
    """A change made answers 303 to the Labels page; that page, as the browser then gets it."""
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(f"{LABELS}?notice=")
    return client.get(location)


def _task_classes(web: Web) -> set[tuple[str, ...]]:
    return {tuple(t.classes) for t in web.queue.tasks()}


def test_lead_renames_a_class_with_the_form(web: Web) -> None:
    client, posted = _change(web, "lea", kind="rename", old="3", new="three", note="spelled")
    response = _made(client, posted)
    assert response.status_code == 200
    assert "Label set version 2: class 3 was renamed to three. 3 task(s) now offer" in (
        response.text
    )

    label_sets = web.program("digits").store.label_sets
    v1, v2 = label_sets.versions()
    assert v1.classes == tuple(digits.CLASSES)
    assert v2.classes == tuple("three" if c == "3" else c for c in digits.CLASSES)
    assert (v2.created_by, v2.note) == ("lea", "spelled")
    expected = [("three" if c == "3" else c) for c in digits.CLASSES]
    assert _task_classes(web) == {tuple(expected)}
    # The open tasks offer the new name on the annotator's page.
    annotator = web.sign_in("ann")
    assert BUTTON.findall(annotator.get(f"{D}/annotate").text) == expected
    # The page lists both versions, newest first, with who made the change.
    page = client.get(LABELS).text
    assert 'id="version-2"' in page and "class 3 was renamed to three" in page
    assert page.index('id="version-2"') < page.index('id="version-1"')
    assert "<td>lea</td>" in page
    [entry] = web.audit.entries(action="label_set.evolve").to_dict("records")
    assert entry["actor"] == "lea"
    assert entry["detail"]["change"] == {
        "kind": "rename",
        "sources": ["3"],
        "targets": ["three"],
    }


def test_a_split_reports_the_relabel_tasks_it_opened(web: Web) -> None:
    annotator = web.sign_in("ann")
    task_id = annotator.get(f"{D}/annotate").text.split('data-task-id="', 1)[1].split('"', 1)[0]
    token = web.csrf(annotator, f"{D}/annotate")
    answer = {"csrf": token, "task_id": task_id, "label": "7"}
    assert annotator.post(f"{D}/annotate/answer", data=answer).status_code == 303

    response = _made(*_change(web, "lea", kind="split", source="7", into="7, 7-crossed"))
    assert response.status_code == 200, response.text
    assert "class 7 was split into 7 and 7-crossed" in response.text
    assert "1 sample(s) re-queued for relabeling in round relabel-v2" in response.text
    relabel = [t for t in web.queue.tasks() if t.round == "relabel-v2"]
    assert [tuple(t.classes) for t in relabel] == [("7", "7-crossed")]


@pytest.mark.parametrize("who", ["ann", "rev", "vic"])
def test_others_see_the_page_read_only_and_their_post_is_refused(web: Web, who: str) -> None:
    client = web.sign_in(who)
    page = client.get(LABELS)
    assert page.status_code == 200
    assert 'id="classes-in-force"' in page.text and '<code class="class">3</code>' in page.text
    assert CHANGE not in page.text and 'id="labels-read-only"' in page.text
    # The navigation links the page for everyone the program registered.
    assert f'href="{LABELS}"' in client.get(f"{D}/dashboard").text

    before = _task_classes(web)
    token = web.csrf(client, LABELS)
    refused = client.post(CHANGE, data={"csrf": token, "kind": "add", "name": "ten"})
    assert refused.status_code == 403
    assert "may not manage_programs" in refused.text
    assert web.program("digits").store.label_sets.versions() == []
    assert _task_classes(web) == before


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"kind": "rename", "old": "3", "new": "8"}, "Cannot rename &#39;3&#39; to &#39;8&#39;"),
        ({"kind": "rename", "old": "33", "new": "x"}, "Cannot rename &#39;33&#39;: no such class"),
        ({"kind": "add", "name": ""}, "Invalid class &#39;&#39;: empty"),
        ({"kind": "add", "name": "x" * 201}, "201 characters, at most 200"),
        ({"kind": "add", "name": "a=b"}, "no control characters, &#39;,&#39; or &#39;=&#39;"),
        ({"kind": "split", "source": "7", "into": "7,7"}, "at least 2 distinct new classes"),
        ({"kind": "merge", "sources": "3", "into": "x"}, "at least 2 distinct classes to merge"),
        ({"kind": "drop", "name": "3"}, "Unknown label set change &#39;drop&#39;"),
    ],
)
def test_an_invalid_change_shows_the_core_error_and_changes_nothing(
    web: Web, fields: dict[str, str], says: str
) -> None:
    before = _task_classes(web)
    _, response = _change(web, "lea", **fields)
    assert response.status_code == 422
    error = re.search(r'id="labels-error">(.*?)</p>', response.text, re.S).group(1)
    assert says in error and "Nothing was changed." in error
    assert web.program("digits").store.label_sets.versions() == []
    assert _task_classes(web) == before
    assert 'id="form-rename"' in response.text  # the forms are still there to try again


def test_class_names_are_escaped_on_the_page(web: Web) -> None:
    client, posted = _change(web, "lea", kind="add", name="<b>bold</b>")
    response = _made(client, posted)
    assert response.status_code == 200
    assert "<b>bold</b>" not in response.text
    assert "&lt;b&gt;bold&lt;/b&gt;" in response.text
    assert web.program("digits").store.label_sets.classes(())[-1] == "<b>bold</b>"
    _, refused = _change(web, "lea", kind="add", name="<b>bold</b>")
    assert refused.status_code == 422 and "<b>bold</b>" not in refused.text
    assert "<b>bold</b>" not in client.get("/").text


@pytest.mark.parametrize("token", [None, "forged"])
def test_a_post_without_the_csrf_token_is_refused(web: Web, token: str | None) -> None:
    client = web.sign_in("lea")
    data = {"kind": "add", "name": "ten"}
    if token is not None:
        data["csrf"] = token
    response = client.post(CHANGE, data=data)
    assert response.status_code == 403 and "CSRF" in response.text
    assert web.program("digits").store.label_sets.versions() == []


def test_reloading_the_page_after_a_change_repeats_nothing_and_the_notice_is_the_sessions_own(
    web: Web,
) -> None:
    """Post, redirect, get: the notice rides in the URL, sealed for the session that made the
    change; reloading shows it again without a second change, and the same URL shows nothing
    to another session, nor does a notice someone made up."""
    client, posted = _change(web, "lea", kind="add", name="ten")
    location = posted.headers["location"]
    said = "Label set version 2: class ten was added."
    assert said in _made(client, posted).text
    assert said in client.get(location).text  # a reload: the same page, no new change
    assert [v.version for v in web.program("digits").store.label_sets.versions()] == [1, 2]

    for other in (web.sign_in("lea"), web.sign_in("ann")):  # a new session, another person
        page = other.get(location)
        assert page.status_code == 200 and said not in page.text
    sealed = location.split("notice=", 1)[1]
    for made_up in (sealed[:-2] + "xx", "Label set version 9", ""):
        page = client.get(f"{LABELS}?notice={made_up}")
        assert page.status_code == 200 and 'id="labels-message"' not in page.text
