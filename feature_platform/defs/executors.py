"""Which Dagster executor runs the steps of every job, chosen by FP_EXECUTOR.

- `multiprocess` (default): Dagster's default executor, each step in its own process on the
  machine that runs the run (in-process under `execute_in_process`, as in the tests and demo).
- `in_process`: every step inside the run's own process (one import of the code per run; the
  fastest choice for small runs such as the round jobs).
- `celery`: dagster-celery; steps are queued on a broker (FP_CELERY_BROKER, default Redis on
  127.0.0.1:6379) and executed by `dagster-celery worker start` processes on any machine that
  reaches the broker, the Dagster instance (Postgres) and the stores. Needs the `production`
  extra (`pip install -e ".[production]"`).
"""

from __future__ import annotations

import os

import dagster as dg

from feature_platform.errors import FeaturePlatformError

EXECUTOR_ENV = "FP_EXECUTOR"
MULTIPROCESS, IN_PROCESS, CELERY = "multiprocess", "in_process", "celery"
EXECUTORS = (MULTIPROCESS, IN_PROCESS, CELERY)
DEFAULT_CELERY_BROKER = "redis://127.0.0.1:6379/0"
DEFAULT_CELERY_BACKEND = "redis://127.0.0.1:6379/1"


def celery_config() -> dict[str, str]:
    """Broker and result backend of the Celery executor; workers must be started with the same
    (see deploy/celery.yaml, which reads the same environment variables)."""
    return {
        "broker": os.environ.get("FP_CELERY_BROKER") or DEFAULT_CELERY_BROKER,
        "backend": os.environ.get("FP_CELERY_BACKEND") or DEFAULT_CELERY_BACKEND,
    }


def executor_from_env() -> dg.ExecutorDefinition | None:
    """The executor named by FP_EXECUTOR, or None to keep Dagster's default (multiprocess)."""
    name = (os.environ.get(EXECUTOR_ENV) or MULTIPROCESS).strip().lower()
    if name == MULTIPROCESS:
        return None
    if name == IN_PROCESS:
        return dg.in_process_executor
    if name == CELERY:
        try:
            from dagster_celery import celery_executor
        except ImportError as exc:
            raise FeaturePlatformError(
                f"{EXECUTOR_ENV}=celery needs dagster-celery: "
                'pip install -e ".[production]" (it is not installed).'
            ) from exc
        return celery_executor.configured(celery_config(), name="celery")
    raise FeaturePlatformError(
        f"{EXECUTOR_ENV}={name!r} is not an executor; use one of {', '.join(EXECUTORS)}."
    )
