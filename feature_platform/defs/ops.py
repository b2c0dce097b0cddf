"""Jobs that are actions rather than assets."""

import dagster as dg

from feature_platform.defs.resources import MlflowResource, ProgramResource, StoreResource
from feature_platform.learning import rounds
from feature_platform.learning.tracking import CHAMPION


@dg.op(description="Re-score every open task with the champion, so no stale priority is served.")
def rescore_with_champion(
    context: dg.OpExecutionContext,
    store: StoreResource,
    mlflow: MlflowResource,
    program: ProgramResource,
) -> None:
    tracker = mlflow.tracker()
    champion = tracker.by_alias(CHAMPION)
    if champion is None:
        context.log.info("no champion yet: nothing to re-score with")
        return
    result = rounds.rescore_open_tasks(
        store.get(), program.program(), tracker.load(champion), champion.label
    )
    rescored = len(result.rescored) if result else 0
    context.add_output_metadata({"rescored_tasks": rescored, "champion": champion.label})


@dg.job(description="Re-score open labeling tasks with the current champion.")
def rescore_open_tasks_job() -> None:
    rescore_with_champion()
