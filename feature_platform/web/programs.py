"""Which labeling program a page is about: the one place the web app looks programs up, so it
follows when one program becomes many."""

from __future__ import annotations

import os
from dataclasses import dataclass

from feature_platform.labeling.queue import Task
from feature_platform.learning.rounds import Program

IMAGE_8X8, TEXT, TABLE = "image8x8", "text", "table"


@dataclass(frozen=True)
class WebProgram:
    name: str
    title: str
    program: Program
    instructions: str
    modality: str  # how a sample is shown: IMAGE_8X8, TEXT or TABLE
    model_name: str  # the registered MLflow model its rounds produce

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.program.classes)


def _digits() -> WebProgram:
    # The same FP_* settings (and defaults) the code location's ProgramResource.from_env reads.
    env = os.environ.get
    return WebProgram(
        name="digits",
        title="Handwritten digits",
        program=Program(
            feature_set=env("FP_FEATURE_SET", "digits@training"),
            strategy=env("FP_STRATEGY", "margin"),
            batch_size=int(env("FP_BATCH_SIZE", "20")),
            label_budget=int(env("FP_LABEL_BUDGET", "200")),
            answers_per_task=int(env("FP_ANSWERS_PER_TASK", "1")),
            seed=int(env("FP_SEED", "0")),
        ),
        instructions=(
            "Which digit is written? Answer with the digit keys 0-9. If you cannot tell, press "
            "u (unsure); if the image is not a digit at all, press s and say why."
        ),
        modality=IMAGE_8X8,
        model_name="digits-classifier",
    )


def programs() -> list[WebProgram]:
    return [_digits()]


def lookup_program(name: str | None = None, task: Task | None = None) -> WebProgram:
    """The program called `name`, or the one `task` belongs to, or the default one."""
    known = {p.name: p for p in programs()}
    if name is not None and name in known:
        return known[name]
    return known["digits"]
