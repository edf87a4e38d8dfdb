"""`petseg` command line: `petseg serve` runs the service under uvicorn; `petseg predict` runs it on files."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.settings import Settings

EXIT_USAGE = 2  # argparse's status for bad arguments; bad settings are the same kind of mistake


def load_settings(*, warn_unknown: bool = True, **overrides: Any) -> Settings:
    """Settings from PETSEG_* plus the command line's overrides (None: not given); exit 2 with one line
    naming the bad variable instead of a traceback, and warn about PETSEG_* variables nothing reads."""
    from pydantic import ValidationError

    from app.settings import Settings, describe_invalid, unknown_environment

    try:
        settings = Settings(**{name: value for name, value in overrides.items() if value is not None})
    except ValidationError as exc:
        print(f"petseg: {describe_invalid(exc)}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    for line in unknown_environment() if warn_unknown else []:
        print(f"petseg: warning: {line}", file=sys.stderr)
    return settings


# (environment variable that overrides it, mallopt option, value) for `tune_malloc`.
MALLOC_TUNING = (
    ("MALLOC_ARENA_MAX", -8, 2),  # M_ARENA_MAX
    ("MALLOC_MMAP_THRESHOLD_", -3, 1 << 20),  # M_MMAP_THRESHOLD
    ("MALLOC_TRIM_THRESHOLD_", -1, 16 << 20),  # M_TRIM_THRESHOLD
)


def tune_malloc() -> None:
    """Keep glibc's heap from creeping up under load, without paying page faults for every request
    (like MALLOC_ARENA_MAX=2, MALLOC_MMAP_THRESHOLD_=1M, MALLOC_TRIM_THRESHOLD_=16M).

    Measured with bench (3,500 requests, 128 px model): RSS grew 972 -> 1330 MB with glibc defaults.
    Two causes: each worker thread gets its own arena (up to 8 per core), and after the first large
    free the mmap threshold rises to 32 MB, so photo-sized buffers (0.5-6 MB) then come from the heap
    and fragment it. Two arenas and a fixed mmap threshold (large buffers mmapped and returned on free)
    held it to 868 -> 950 MB.

    The threshold was 256 KB until the release model's 224 px outputs made every request allocate
    and free several buffers of 600 KB (float32 [224, 224, 3] probabilities, the upsampling's int32
    planes, NumPy temporaries): each was mapped afresh and faulted in page by page, 600-1,000 minor
    page faults per `/segment` mask and 7.7 % of the server's CPU at 16 clients (perf). At 1 MB, with
    the heap's top kept up to 16 MB instead of trimmed after each free, it is about 60 faults per
    request; buffers of a megabyte and more (photos over ~500x500 px) are still mapped and returned.
    Environment variables, when set, win.
    """
    with contextlib.suppress(OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        libc = ctypes.CDLL("libc.so.6")
        for name, option, value in MALLOC_TUNING:
            if name not in os.environ:
                libc.mallopt(option, value)


def _serve(args: argparse.Namespace) -> int:
    tune_malloc()
    # Settings first: app.main builds a default app at import, which would fail less clearly.
    # The service itself logs unknown PETSEG_* variables at startup; saying it here too would say it twice.
    settings = load_settings(model_dir=args.model_dir, host=args.host, port=args.port, warn_unknown=False)
    import uvicorn

    from app.main import create_app

    # uvicorn re-raises SIGTERM after its graceful shutdown, which would end the process as "killed"
    # (exit -15); a handler that does nothing there turns a clean drain into exit code 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    uvicorn.run(create_app(settings), **uvicorn_options(settings))
    return 0


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How `petseg serve` runs uvicorn: where it listens, how loud, how long SIGTERM lets requests finish."""
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "timeout_graceful_shutdown": settings.drain_timeout_seconds,
    }


def _predict(args: argparse.Namespace) -> int:
    _refuse_ignored_options(args)
    settings = load_settings(model_dir=args.model)
    from app.predict import predict
    from app.schemas import OutputMode

    return predict(
        args.photos,
        settings=settings,
        output=OutputMode(args.output),
        out_dir=args.out,
        opacity=0.5 if args.opacity is None else args.opacity,
        background=args.background,
        progress=not args.quiet,
    )


def _refuse_ignored_options(args: argparse.Namespace) -> None:
    """Exit 2 when --opacity or --background is given with an --output that ignores it (the API's 422)."""
    from app.schemas import OutputMode, ignored_parameters, users_of

    given = {name for name in ("opacity", "background") if getattr(args, name) is not None}
    ignored = ignored_parameters(OutputMode(args.output), given)
    if ignored:
        args.parser.error(
            "; ".join(
                f"--{name} only applies to --output {users_of(name)}, not {args.output}" for name in ignored
            )
        )


def _color(value: str) -> tuple[int, int, int]:
    from app.imaging import parse_color

    try:
        return parse_color(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a hex colour like ffffff, not {value!r}") from None


def _port(value: str) -> int:
    if not value.isdigit() or int(value) > 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port 0..65535, not {value!r}")
    return int(value)


def _opacity(value: str) -> float:
    opacity = float(value)
    if not 0.0 <= opacity <= 1.0:
        raise argparse.ArgumentTypeError(f"opacity must be between 0 and 1, not {value}")
    return opacity


def _add_predict(commands: argparse._SubParsersAction) -> None:
    predict = commands.add_parser(
        "predict",
        help="segment photo files locally, without a server",
        description=(
            "Segment photos with the bundled model (or --model) on this machine, through the same "
            "decode, batching and rendering code as the service. Writes <stem>.<output>.png "
            "(or <stem>.json) per photo into --out. A photo that cannot be read is reported on stderr "
            "and skipped; the exit status is then 1. Exit status 2: nothing was tried (bad arguments or "
            "PETSEG_* settings, no usable model, or an output directory that cannot be created)."
        ),
        epilog=(
            "examples:\n"
            "  petseg predict cat.jpg                        # ./cat.mask.png\n"
            "  petseg predict photos/*.jpg --output cutout --out cutouts/\n"
            "  petseg predict dog.png --output json --model models/pet-unet/5\n"
            "  petseg predict cat.jpg --output alpha           # ./cat.alpha.png, the soft matte"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    predict.add_argument("photos", nargs="+", type=Path, metavar="PHOTO", help="jpeg/png/webp/bmp/gif/tiff")
    predict.add_argument(
        "--output",
        choices=["mask", "overlay", "cutout", "alpha", "json"],
        default="mask",
        help="mask: palette PNG of class indices (0 pet, 1 background, 2 border); overlay: the photo "
        "with class colours blended in; cutout: RGBA PNG of the pet; alpha: greyscale PNG of the soft "
        "pet matte (255 = surely pet); json: sizes, class shares, pet box, one entry per pet, and "
        "species/breed when the model reports them (default: %(default)s)",
    )
    predict.add_argument(
        "--out",
        type=Path,
        default=Path("."),
        metavar="DIR",
        help="output directory (created if missing; default: current directory)",
    )
    predict.add_argument(
        "--model",
        type=Path,
        metavar="DIR",
        help="SavedModel version directory or a base "
        "of numeric versions (default: PETSEG_MODEL_DIR, else the bundled models/pet-unet)",
    )
    predict.add_argument("--opacity", type=_opacity, help="overlay only: colour weight, 0..1 (default: 0.5)")
    predict.add_argument(
        "--background",
        type=_color,
        metavar="RRGGBB",
        help="cutout only: composite on this colour instead of transparency",
    )
    predict.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    predict.set_defaults(handler=_predict, parser=predict)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="petseg", description="Pet-photo segmentation service.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="run the HTTP service (settings from PETSEG_* variables)",
        description="Run the HTTP service. Every setting comes from its PETSEG_* variable "
        "(docs/configuration.md); these flags override their variable. Exit status 2: bad settings.",
    )
    serve.add_argument("--host", help="listen address (overrides PETSEG_HOST; default 127.0.0.1)")
    serve.add_argument("--port", type=_port, help="TCP port (overrides PETSEG_PORT; default 8000)")
    serve.add_argument("--model-dir", type=Path, help="overrides PETSEG_MODEL_DIR")
    serve.set_defaults(handler=_serve)
    _add_predict(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
