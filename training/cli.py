"""`python -m training {train,evaluate,export,benchmark}` — every option documented in --help."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import types
import typing
from pathlib import Path

from training import distribution_args
from training.config import AUGMENTATIONS, DATA_HELP, DECODERS, HEADS, PRESETS, ConfigError, TrainConfig
from training.speed import RUNTIMES


def flag(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def describe_preset(values: dict) -> str:
    return " ".join(f"{flag(k)} {v}" for k, v in values.items())


def scalar_type(hint: typing.Any) -> typing.Any:
    """int for `int`, `int | None` and the like: what argparse converts a flag's text with."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
    return hint


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, with the field's help, type, choices and default.

    Flags left out of the command line stay absent from the parsed namespace (SUPPRESS), so
    `config_from_args` can tell an explicit flag, which overrides a preset, from a default.
    """
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.metadata.get("cli") is False:
            continue
        kwargs: dict[str, typing.Any] = {"type": scalar_type(hints[f.name]), "help": f.metadata["help"]}
        if f.metadata.get("choices"):
            kwargs["choices"] = f.metadata["choices"]
        if f.default is dataclasses.MISSING:
            kwargs["required"] = True
        else:
            kwargs["default"] = argparse.SUPPRESS
            kwargs["help"] += f" (default: {f.default})"
        parser.add_argument(flag(f.name), **kwargs)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig defaults, replaced by the preset's values, replaced by the flags given."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in names}
    preset = PRESETS[args.preset] if args.preset else {}
    return TrainConfig(**{**preset, **given, "preset": args.preset})


def class_bias_arg(text: str) -> str | list[float]:
    """--class-bias: 'auto', or one number per pixel class (pet, background, border)."""
    if text == "auto":
        return text
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"'auto' or three comma-separated numbers, not {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training", description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}

    t = sub.add_parser(
        "train",
        help="train a U-Net into a run directory (resumes an existing one)",
        description="Every option's default comes from training.config.TrainConfig; --preset replaces "
        "those defaults with a named set, and explicit flags override both.",
    )
    t.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="named defaults: "
        + "; ".join(f"{name}: {describe_preset(values)}" for name, values in PRESETS.items()),
    )
    add_config_options(t)
    distribution_args.add_arguments(t)

    e = sub.add_parser(
        "evaluate",
        help="score an exported SavedModel; prints and writes JSON metrics",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    e.add_argument("--model", required=True, help="a SavedModel version directory (models/<name>/<version>)")
    e.add_argument("--data-dir", required=True, help=DATA_HELP)
    e.add_argument("--split", choices=("train", "validation", "test"), default="test")
    e.add_argument("--seed", type=int, default=defaults["seed"], help="the seed of the validation slice")
    e.add_argument("--val-fraction", type=float, default=defaults["val_fraction"])
    e.add_argument(
        "--as-served",
        action="store_true",
        help="score the masks exactly as POST /segment returns them: the photo file decoded by the service's "
        "decoder (reduced-scale JPEG draft), its upsampling (petseg_contract.masks.upsample) to the photo's "
        "own size; default: the trainer's view (full decode, resize, TensorFlow bilinear upsampling)",
    )
    e.add_argument(
        "--output",
        type=Path,
        default=None,
        help="JSON file to write (default: evaluation-<split>.json in the current directory)",
    )

    x = sub.add_parser(
        "export",
        help="export a run's best weights as a SavedModel + metadata.json",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    x.add_argument("--run-dir", required=True)
    x.add_argument("--output", required=True, help="models/<name>/<version>; the version must be numeric")
    x.add_argument(
        "--evaluate",
        default="validation",
        help="comma-separated splits to score into metadata.json (held-out only: validation,test)",
    )
    x.add_argument("--data-dir", default=None, help="override the run's data directory for evaluation")
    x.add_argument("--overwrite", action="store_true", help="replace an existing version directory")
    x.add_argument(
        "--test-time-flip",
        action="store_true",
        help="average with the mirrored photo's probabilities inside the graph (2x compute)",
    )
    x.add_argument(
        "--as-served",
        action="store_true",
        help="score the held-out splits as POST /segment returns masks (see evaluate --as-served)",
    )
    x.add_argument(
        "--class-bias",
        type=class_bias_arg,
        default=None,
        help="per-pixel class bias added to the logits in the graph: 'auto' chooses it on the validation "
        "photos (mean IoU, scored like the metrics; see training.calibrate), or PET,BACKGROUND,BORDER",
    )

    b = sub.add_parser(
        "benchmark",
        help="input pipeline vs training step time on these cores",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    b.add_argument("--data-dir", required=True, help=DATA_HELP)
    b.add_argument("--input-size", type=int, default=defaults["input_size"])
    b.add_argument("--batch-size", type=int, default=defaults["batch_size"])
    b.add_argument("--encoder-weights", default="none", help="random init is as fast and needs no download")
    b.add_argument("--steps", type=int, default=20)
    b.add_argument("--augment", choices=AUGMENTATIONS, default=defaults["augment"])
    b.add_argument("--decoder", choices=DECODERS, default=defaults["decoder"])
    b.add_argument("--heads", choices=HEADS, default=defaults["heads"])
    sp = sub.add_parser(
        "speed",
        help="raw model speed, candidate vs baseline, under TensorFlow and OpenVINO (run on an idle machine)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sp.add_argument(
        "--baseline", type=Path, required=True, help="SavedModel version dir, e.g. models/pet-unet/1"
    )
    which = sp.add_mutually_exclusive_group(required=True)
    which.add_argument("--candidate", type=Path, help="an exported SavedModel version directory")
    which.add_argument("--preset", choices=sorted(PRESETS), help="a preset's architecture, random weights")
    sp.add_argument("--input-size", type=int, default=None, help="override the preset's input size")
    sp.add_argument("--batch-size", type=int, default=16)
    sp.add_argument("--seconds", type=float, default=10.0, help="timed seconds per model and runtime")
    sp.add_argument(
        "--runtimes", default=",".join(RUNTIMES), help=f"comma-separated, of {', '.join(RUNTIMES)}"
    )
    sh = sub.add_parser(
        "showcase",
        help="run a SavedModel on scikit-image's real photos (not from the dataset)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sh.add_argument("--model", required=True, help="a SavedModel version directory")
    sh.add_argument("--out", type=Path, required=True, help="directory for showcase.png and showcase.json")
    fg = sub.add_parser(
        "figures",
        help="draw a SavedModel's model-card figures: curves, validation predictions, worst photos",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    fg.add_argument("--model", required=True, help="a SavedModel version directory")
    fg.add_argument("--data-dir", required=True, help="the Oxford-IIIT Pet directory (validation photos)")
    fg.add_argument("--out", type=Path, required=True, help="directory for the PNGs and figures-TAG.json")
    fg.add_argument("--tag", required=True, help="suffix of the file names, e.g. v5")
    fg.add_argument("--count", type=int, default=6, help="photos per figure")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "train":
        from training.distribute import Interrupted
        from training.train import train

        try:
            best = train(config_from_args(args))
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except Interrupted as e:
            print(f"training stopped: {e}", file=sys.stderr)
            return 143  # 128 + SIGTERM, as if the signal had ended it: a Job controller retries the pod
        print(json.dumps({"best_validation": best}, indent=1))
    elif args.command == "evaluate":
        from training.evaluate import EvaluationError, evaluate_model_dir, format_table

        scoring = "as-served" if args.as_served else "resized"
        try:
            report = evaluate_model_dir(
                args.model, args.data_dir, args.split, args.seed, args.val_fraction, scoring=scoring
            )
        except EvaluationError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        out = args.output or Path(f"evaluation-{args.split}.json")
        out.write_text(json.dumps(report, indent=1) + "\n")
        print(format_table(report))
        print(f"wrote {out}")
    elif args.command == "export":
        from training.evaluate import EvaluationError
        from training.export import ExportError, export

        splits = tuple(s for s in args.evaluate.split(",") if s)
        if "train" in splits:
            print("error: metrics must come from data the model did not train on", file=sys.stderr)
            return 2
        try:
            meta = export(
                args.run_dir,
                args.output,
                splits,
                args.data_dir,
                args.overwrite,
                args.test_time_flip,
                scoring="as-served" if args.as_served else "resized",
                class_bias=args.class_bias,
            )
        except (ExportError, EvaluationError) as e:
            print(f"export failed: {e}", file=sys.stderr)
            return 1
        print(
            json.dumps(
                {
                    "exported": str(args.output),
                    "export_check": meta["export_check"],
                    "class_bias": meta["class_bias"]["values"],
                    "metrics": {s: m["all"]["original_resolution"] for s, m in meta["metrics"].items()},
                    "label_accuracy": {
                        s: {k: m["all"][k]["accuracy"] for k in ("species", "breed") if k in m["all"]}
                        for s, m in meta["metrics"].items()
                    },
                },
                indent=1,
            )
        )
    elif args.command == "benchmark":
        from training.benchmark import benchmark_input

        print(json.dumps(benchmark_input(args), indent=1))
    elif args.command == "speed":
        from training.speed import compare

        runtimes = tuple(r for r in args.runtimes.split(",") if r)
        unknown = set(runtimes) - set(RUNTIMES)
        if unknown:
            print(
                f"error: unknown runtimes {sorted(unknown)}; choose from {', '.join(RUNTIMES)}",
                file=sys.stderr,
            )
            return 2
        report = compare(
            args.baseline,
            args.candidate,
            args.preset,
            runtimes,
            args.batch_size,
            args.seconds,
            args.input_size,
        )
        print(json.dumps(report, indent=1))
    elif args.command == "showcase":
        from training.showcase import showcase

        print(json.dumps(showcase(args.model, args.out), indent=1))
    elif args.command == "figures":
        from training.figures import figures

        report = figures(args.model, args.data_dir, args.out, args.tag, args.count)
        print(json.dumps({k: v for k, v in report.items() if k != "pet_iou_per_photo"}, indent=1))
    return 0
