"""`feature-platform queue status`: where the labeling work stands."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("queue", help="labeling queue: status, requeue expired")
    commands = parser.add_subparsers(dest="queue_command", required=True)
    status = commands.add_parser("status", help="tasks by state, oldest lease, per-annotator load")
    status.add_argument("--round", dest="round_key", default=None)
    status.add_argument("--json", action="store_true", help="print one JSON document")
    status.set_defaults(handler=run_status)
    requeue = commands.add_parser("requeue-expired", help="return expired leases to the queue")
    requeue.set_defaults(handler=run_requeue)


def _store():  # noqa: ANN202
    from feature_platform import FeatureStore, Settings

    return FeatureStore(Settings.from_env())


def run_status(args: argparse.Namespace) -> int:
    from feature_platform.labeling.metrics import queue_status

    status = queue_status(_store().queue, args.round_key)
    oldest = status.oldest_lease
    if args.json:
        document = {
            "round": args.round_key,
            "counts": status.counts,
            "live_leases": status.live_leases,
            "expired_leases": status.expired_leases,
            "oldest_lease": None
            if oldest is None
            else {
                "task_id": oldest.task_id,
                "annotator": oldest.annotator,
                "leased_at": oldest.leased_at.isoformat(),
                "expires_at": oldest.expires_at.isoformat(),
            },
            "per_annotator": status.per_annotator.astype(object)
            .where(status.per_annotator.notna(), None)
            .to_dict("records"),
        }
        print(json.dumps(document, indent=2))
        return 0
    from feature_platform.names import printable

    scope = f"round {printable(args.round_key)}" if args.round_key else "all rounds"
    counts = ", ".join(f"{state} {n}" for state, n in status.counts.items())
    print(f"{scope}: {sum(status.counts.values())} tasks ({counts})")
    print(f"leases: {status.live_leases} live, {status.expired_leases} expired awaiting requeue")
    if oldest is not None:
        print(
            f"oldest lease: task {oldest.task_id} held by {printable(oldest.annotator)} since "
            f"{oldest.leased_at:%Y-%m-%d %H:%M:%S} UTC (expires {oldest.expires_at:%H:%M:%S})"
        )
    if status.per_annotator.empty:
        print("no annotator activity yet")
    else:
        print(printable(status.per_annotator.to_string(index=False, float_format="%.1f")))
    return 0


def run_requeue(args: argparse.Namespace) -> int:
    from feature_platform.governance import require

    store = _store()
    require(None, "manage_queue", store.engine)  # the command line's identity: lead or admin
    print(f"requeued {store.queue.requeue_expired()} expired lease(s)")
    return 0
