"""Jobs that are actions rather than assets."""

import dagster as dg

from feature_platform.defs.context import ProgramContext
from feature_platform.defs.resources import MlflowResource, StoreResource
from feature_platform.learning import rounds
from feature_platform.learning.tracking import CHAMPION


def build_rescore_job(ctx: ProgramContext) -> dg.JobDefinition:
    @dg.op(
        name=f"{ctx.group}__rescore_with_champion",
        description="Re-score every open task with the champion, so no stale priority is served.",
    )
    def rescore_with_champion(
        context: dg.OpExecutionContext, store: StoreResource, mlflow: MlflowResource
    ) -> None:
        tracker = mlflow.tracker(ctx.model_name)
        champion = tracker.by_alias(CHAMPION)
        if champion is None:
            context.log.info("no champion yet: nothing to re-score with")
            return
        version = tracker.version_tags(champion.version).get("feature_set_version")
        program = ctx.program.pinned(version) if version else ctx.program
        result = rounds.rescore_open_tasks(
            store.for_program(ctx.name), program, tracker.load(champion), champion.label
        )
        rescored = len(result.rescored) if result else 0
        context.add_output_metadata({"rescored_tasks": rescored, "champion": champion.label})

    @dg.job(
        name=ctx.job_name("rescore_open_tasks"),
        description=f"Re-score {ctx.name}'s open labeling tasks with the current champion.",
    )
    def rescore_open_tasks_job() -> None:
        rescore_with_champion()

    return rescore_open_tasks_job
