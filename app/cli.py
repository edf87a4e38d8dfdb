"""`petseg` command line: `petseg serve` runs the service under uvicorn."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.main import create_app
    from app.settings import Settings

    overrides = {"model_dir": args.model_dir} if args.model_dir else {}
    settings = Settings(**overrides)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=10,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="petseg", description="Pet-photo segmentation service.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service (settings from PETSEG_* variables)")
    serve.add_argument("--host", default=os.environ.get("PETSEG_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("PETSEG_PORT", "8000")))
    serve.add_argument("--model-dir", help="overrides PETSEG_MODEL_DIR")
    serve.set_defaults(handler=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
