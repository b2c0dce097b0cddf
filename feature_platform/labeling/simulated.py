"""Simulated annotators for demos, tests and benchmarks.

They answer through the same queue API a person's answers take (lease, then submit), from a
ground-truth oracle they are handed. Nothing else in the platform reads that ground truth.
Like any labeler they must be registered people: the platform's system identity registers
them as annotators (`sim-annotator-N`, audited) the first time they answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from feature_platform.errors import InvalidArgumentError
from feature_platform.governance.identity import system_actor
from feature_platform.governance.roles import ANNOTATOR
from feature_platform.labeling.queue import TaskQueue


@dataclass
class SimulatedAnnotators:
    truth: Mapping[str, str]  # sample key -> true label
    classes: Sequence[str]
    count: int = 3
    accuracy: float = 1.0
    seed: int = 0
    # One accuracy per annotator (overrides `count` and `accuracy`): a mixed team, e.g.
    # (0.9, 0.8, 0.7, 0.55, 0.12) with the last one close to random for 10 classes.
    accuracies: Sequence[float] | None = None

    def __post_init__(self) -> None:
        levels = (
            list(self.accuracies) if self.accuracies is not None else [self.accuracy] * self.count
        )
        if not levels or not all(0.0 <= a <= 1.0 for a in levels):
            raise InvalidArgumentError(
                f"Simulated annotators need at least one accuracy, each in [0, 1]; got {levels}."
            )
        self._rng = np.random.default_rng(self.seed)
        self.names = [f"sim-annotator-{i + 1}" for i in range(len(levels))]
        self.accuracy_of = dict(zip(self.names, levels, strict=True))

    def answer(self, queue: TaskQueue, round_key: str | None = None, limit: int = 10_000) -> int:
        """Annotators take turns leasing and answering until no open task is left for them.
        Returns how many answers were submitted."""
        self.enroll(queue)
        submitted = 0
        active = list(self.names)
        while active and submitted < limit:
            for name in list(active):
                leased = queue.lease(name, limit=1, round_key=round_key)
                if not leased:
                    active.remove(name)
                    continue
                task = leased[0]
                label = self._label_for(task.sample_key, task.classes, self.accuracy_of[name])
                queue.submit(
                    task.id,
                    name,
                    label,
                    time_spent_s=float(self._rng.gamma(2.0, 4.0)),
                )
                submitted += 1
        return submitted

    def enroll(self, queue: TaskQueue) -> None:
        """Register these annotators (as the platform) unless they already are."""
        for name in self.names:
            if queue.registry.find(name) is None:
                queue.registry.add(name, ANNOTATOR, actor=system_actor())

    def _label_for(self, sample_key: str, classes: Sequence[str], accuracy: float) -> str:
        true = str(self.truth[str(sample_key)])
        if self._rng.random() < accuracy:
            return true
        wrong = [c for c in classes if c != true]
        return str(self._rng.choice(wrong)) if wrong else true
