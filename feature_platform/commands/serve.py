"""`feature-platform serve`: the web app for annotators, reviewers and leads."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="the web app: sign-in, labeling, review and the lead's dashboard"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument(
        "--lease-seconds", type=float, default=600.0, help="how long a task stays leased"
    )
    parser.add_argument(
        "--project",
        type=Path,
        default=None,
        help="a project folder (programs/*.yaml) to serve; default: the shipped examples",
    )
    parser.add_argument(
        "--secure-cookies", action="store_true", help="mark cookies Secure (serve behind HTTPS)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from feature_platform.settings import Settings
    from feature_platform.web.app import WebConfig, create_app

    app = create_app(
        Settings.from_env(scoped=False),  # every program is served, not one (FP_PROGRAM)
        config=WebConfig(lease_seconds=args.lease_seconds, secure_cookies=args.secure_cookies),
        project_dir=args.project,
    )
    print(f"feature_platform web app on http://{args.host}:{args.port}/ (Ctrl-C stops it)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
