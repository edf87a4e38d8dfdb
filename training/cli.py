"""`python -m training {train,evaluate,export,benchmark}` — every option documented in --help."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from training import distribution_args

DATA_HELP = (
    "photos: a directory in the official Oxford-IIIT Pet layout (e.g. ../shared/data/oxford-iiit-pet), "
    "'tfds' or 'tfds:DIR' for tensorflow-datasets' oxford_iiit_pet (downloads once), or 'synthetic' "
    "for a tiny generated set (smoke runs, seconds)"
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training", description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser(
        "train",
        help="train a U-Net into a run directory (resumes an existing one)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    t.add_argument("--data-dir", required=True, help=DATA_HELP)
    t.add_argument("--run-dir", required=True, help="where config, history, checkpoints and plots go")
    t.add_argument("--epochs", type=int, default=20, help="phase 1: decoder on the frozen encoder")
    t.add_argument("--fine-tune-epochs", type=int, default=0, help="phase 2: encoder unfrozen (0 = skip)")
    t.add_argument("--input-size", type=int, default=128, help="square model input in pixels")
    t.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="global batch size: split evenly over the replicas in sync (per replica = global / replicas)",
    )
    t.add_argument(
        "--encoder-weights",
        default="imagenet",
        help="'imagenet' (Keras download), a path to a MobileNetV2 .weights.h5, or 'none'",
    )
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--val-fraction", type=float, default=0.1, help="seeded slice of trainval for validation")
    t.add_argument("--learning-rate", type=float, default=1e-3)
    t.add_argument("--fine-tune-learning-rate", type=float, default=1e-4)
    t.add_argument(
        "--fine-tune-from",
        default=None,
        help="first encoder layer to unfreeze in phase 2 (e.g. block_13_expand); default: all",
    )
    t.add_argument(
        "--dice-weight", type=float, default=0.0, help="weight of a soft Dice term added to the CE"
    )
    t.add_argument(
        "--augment",
        choices=("full", "flip"),
        default="full",
        help="full: random resized crop + flip + colour jitter; flip: the seed's flip only",
    )
    t.add_argument("--patience", type=int, default=6, help="early stopping patience on val mean IoU")
    t.add_argument("--steps-per-epoch", type=int, default=None, help="cap steps per epoch (smoke runs)")
    t.add_argument(
        "--alpha", type=float, default=1.0, help="MobileNetV2 width (<1 only for tiny test models)"
    )
    t.add_argument("--decoder-scale", type=float, default=1.0, help="decoder width multiplier")
    t.add_argument("--name", default="pet-unet", help="model name recorded in the run")
    t.add_argument(
        "--init-weights",
        default=None,
        help="start from a run's best.weights.h5 (e.g. fine-tune a 128 px run at 192 px); "
        "use with --epochs 0 to go straight to fine-tuning",
    )
    distribution_args.add_arguments(t)

    e = sub.add_parser(
        "evaluate",
        help="score an exported SavedModel; prints and writes JSON metrics",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    e.add_argument("--model", required=True, help="a SavedModel version directory (models/<name>/<version>)")
    e.add_argument("--data-dir", required=True, help=DATA_HELP)
    e.add_argument("--split", choices=("train", "validation", "test"), default="test")
    e.add_argument("--seed", type=int, default=0, help="the seed of the validation slice")
    e.add_argument("--val-fraction", type=float, default=0.1)
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

    b = sub.add_parser(
        "benchmark",
        help="input pipeline vs training step time on these cores",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    b.add_argument("--data-dir", required=True, help=DATA_HELP)
    b.add_argument("--input-size", type=int, default=128)
    b.add_argument("--batch-size", type=int, default=32)
    b.add_argument("--encoder-weights", default="none")
    b.add_argument("--steps", type=int, default=20)
    b.add_argument("--augment", choices=("full", "flip"), default="full")
    sh = sub.add_parser(
        "showcase",
        help="run a SavedModel on scikit-image's real photos (not from the dataset)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sh.add_argument("--model", required=True, help="a SavedModel version directory")
    sh.add_argument("--out", type=Path, required=True, help="directory for showcase.png and showcase.json")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "train":
        from training.config import TrainConfig
        from training.distribute import Interrupted
        from training.train import train

        fields = {k: v for k, v in vars(args).items() if k != "command"}
        try:
            best = train(TrainConfig(**fields))
        except Interrupted as e:
            print(f"training stopped: {e}", file=sys.stderr)
            return 143  # 128 + SIGTERM, as if the signal had ended it: a Job controller retries the pod
        print(json.dumps({"best_validation": best}, indent=1))
    elif args.command == "evaluate":
        from training.evaluate import evaluate_model_dir, format_table

        report = evaluate_model_dir(args.model, args.data_dir, args.split, args.seed, args.val_fraction)
        out = args.output or Path(f"evaluation-{args.split}.json")
        out.write_text(json.dumps(report, indent=1) + "\n")
        print(format_table(report))
        print(f"wrote {out}")
    elif args.command == "export":
        from training.export import ExportError, export

        splits = tuple(s for s in args.evaluate.split(",") if s)
        if "train" in splits:
            print("error: metrics must come from data the model did not train on", file=sys.stderr)
            return 2
        try:
            meta = export(
                args.run_dir, args.output, splits, args.data_dir, args.overwrite, args.test_time_flip
            )
        except ExportError as e:
            print(f"export failed: {e}", file=sys.stderr)
            return 1
        print(
            json.dumps(
                {
                    "exported": str(args.output),
                    "export_check": meta["export_check"],
                    "metrics": {s: m["all"]["original_resolution"] for s, m in meta["metrics"].items()},
                },
                indent=1,
            )
        )
    elif args.command == "benchmark":
        from training.benchmark import benchmark_input

        print(json.dumps(benchmark_input(args), indent=1))
    elif args.command == "showcase":
        from training.showcase import showcase

        print(json.dumps(showcase(args.model, args.out), indent=1))
    return 0
