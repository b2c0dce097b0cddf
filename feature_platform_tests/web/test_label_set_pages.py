"""The annotator's page after the label set changed: the new classes are offered, and a
relabel task offers only the split's classes with the reason it is asked again."""

from __future__ import annotations

import re

from feature_platform.catalog import digits
from feature_platform.labeling.label_sets import LabelChange

from .conftest import D, Web

BUTTON = re.compile(r'<button type="submit" name="label" value="([^"]+)"')


def _buttons(page: str) -> list[str]:
    return BUTTON.findall(page)


def test_the_page_offers_the_label_set_in_force(web: Web) -> None:
    client = web.sign_in("ann")
    assert _buttons(client.get(f"{D}/annotate").text) == digits.CLASSES
    task_id = client.get(f"{D}/annotate").text.split('data-task-id="', 1)[1].split('"', 1)[0]
    token = web.csrf(client, f"{D}/annotate")
    answered = client.post(
        f"{D}/annotate/answer", data={"csrf": token, "task_id": task_id, "label": "7"}
    )
    assert answered.status_code == 303
    store = web.program("digits").store
    store.label_sets.evolve(
        "digits", LabelChange.rename("3", "three"), initial_classes=digits.CLASSES, actor="lea"
    )
    assert _buttons(client.get(f"{D}/annotate").text) == [
        "three" if c == "3" else c for c in digits.CLASSES
    ]
    assert "labels 0, 1, 2, three, 4" in client.get("/").text

    evolution = store.label_sets.evolve("digits", LabelChange.split("7", ["7", "7-crossed"]))
    [relabel] = evolution.relabel_tasks
    web.queue.release(web.queue.leases("ann")[0].task_id, "ann")
    page = client.get(f"{D}/annotate").text
    assert f'data-task-id="{relabel.id}"' in page
    assert _buttons(page) == ["7", "7-crossed"]
    assert "class 7 was split into 7 and 7-crossed" in page
