"""The argument parser of every ``harness`` subcommand: declarations, not logic."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from harness.contracts.settings import AUGMENTATIONS

KIND_PLURALS = {"datasets": "dataset", "models": "model", "attacks": "attack",
                "defenses": "defense"}


def names(text: str) -> tuple[str, ...]:
    """A comma-separated list of names, blanks dropped."""
    return tuple(n.strip() for n in text.split(",") if n.strip())


def eps_list(text: str) -> tuple[float, ...]:
    """A comma-separated list of eps: numbers or fractions such as 8/255."""
    values = []
    for item in names(text):
        try:
            if "/" in item:     # a fraction of the pixel range, as papers write it: 8/255
                numerator, denominator = item.split("/")
                value = float(numerator) / float(denominator)
            else:
                value = float(item)
        except (ValueError, ZeroDivisionError):
            raise argparse.ArgumentTypeError(f"'{item}' is not a number (nor a fraction such "
                                             "as 8/255)") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"'{item}' is not a finite number")
        values.append(value)
    if not values:
        raise argparse.ArgumentTypeError("give at least one eps")
    return tuple(values)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="harness", description="Benchmark the adversarial robustness of image "
        "classifiers: datasets x models x defenses x attacks.")
    parser.add_argument("--disable-plugin", action="append", default=[], metavar="NAME",
                        help="do not load this plugin: NAME (entry-point name) disables every "
                             "plugin of that name, DIST:NAME (e.g. harness-foo:fgsm) only the "
                             "one of distribution DIST (to keep a built-in of the same name); "
                             "repeatable; also HARNESS_DISABLE_PLUGINS=a,b")
    sub = parser.add_subparsers(dest="command", required=True)

    bench = sub.add_parser("bench", help="run the cross-product and print the leaderboard")
    defaults = "(default: the ones the plugins declare default, see `harness list`)"
    bench.add_argument("--dataset", type=names, default=None,
                       help=f"comma-separated dataset names or 'all' {defaults}")
    bench.add_argument("--model", type=names, default=None,
                       help="comma-separated model names, e.g. paper-cnn,timm:resnet18, or "
                            f"'all' {defaults}")
    bench.add_argument("--attack", type=names, default=None,
                       help=f"comma-separated attack names or 'all' {defaults}")
    bench.add_argument("--defense", type=names, default=None,
                       help=f"comma-separated defense names or 'all' {defaults}; the "
                            "undefended baseline is always added")
    bench.add_argument("--eps", type=eps_list, default=None,
                       help="comma-separated eps in pixel units, e.g. 0.05,0.1,0.2 or 4/255 "
                            "(default: each dataset's: 0.1 digits/MNIST, 0.03 CIFAR-10 and "
                            "ImageNet)")
    bench.add_argument("--no-baseline", action="store_true",
                       help="do not add the undefended baseline (reference) row")
    bench.add_argument("--n-train", type=int, default=None, help="seeded subset of training images")
    bench.add_argument("--n-test", type=int, default=None, help="seeded subset of test images")
    bench.add_argument("--epochs", type=int, default=None, help="maximum epochs (default 30)")
    bench.add_argument("--batch-size", type=int, default=None, help="training batch (default 128)")
    bench.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 1e-3)")
    bench.add_argument("--patience", type=int, default=None,
                       help="epochs without a better validation loss before stopping (default 3)")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    bench.add_argument("--data-root", type=Path, default=None,
                       help="folder holding the datasets (default $HARNESS_DATA, else ./data)")
    bench.add_argument("--download", action="store_true",
                       help="download missing datasets (needs the network)")
    bench.add_argument("--image-size", type=int, default=None,
                       help="resize images to this side (default: native; ImageNet 224, "
                            "Imagenette 64)")
    bench.add_argument("--attack-batch-size", type=int, default=256)
    bench.add_argument("--chunk-images", type=int, default=None, metavar="N",
                       help="score each evasion cell in independent chunks of N test images, "
                            "each kept as it finishes, so an interrupted cell resumes where it "
                            "stopped (for cells of hours; part of the cell's key)")
    bench.add_argument("--early-stop-on", choices=("clean", "robust", "objective"),
                       default=None,
                       help="the validation loss early stopping and the kept weights follow: "
                            "clean (default), robust (PGD-10 examples at --early-stop-eps, "
                            "against catastrophic and robust overfitting) or the defense's "
                            "objective (native defenses only)")
    bench.add_argument("--early-stop-eps", type=float, default=None,
                       help="eps of --early-stop-on robust (default: the dataset's eps)")
    bench.add_argument("--augment", choices=AUGMENTATIONS, default=None,
                       help="augment each training minibatch: flip-crop (random left-right "
                            "flip and shift by up to 1/8 of the side, reflect padding), for "
                            "natural images; part of the training cache key")
    bench.add_argument("--amp", choices=("bf16",), default=None,
                       help="mixed precision: bfloat16 autocast for training, attacks and "
                            "predictions (off by default; part of the cache keys)")
    bench.add_argument("--cudnn-benchmark", action="store_true",
                       help="on CUDA, let cuDNN pick the fastest convolution algorithms (the "
                            "numbers may change in their last digits; part of the cache keys)")
    for kind in ("model", "attack", "defense"):
        bench.add_argument(f"--{kind}-opt", action="append", default=[],
                           metavar="NAME.OPTION=VALUE",
                           help=f"an option of one {kind} plugin; repeatable")
    bench.add_argument("--reported", type=float, default=None, metavar="ACC",
                       help="the robust accuracy (a fraction, e.g. 0.9735) the authors of the "
                            "one supplied model report; its claim is unreliable when "
                            "AutoAttack or the worst case falls 5 points below it (same as "
                            "--model-opt MODEL.reported=ACC)")
    bench.add_argument("--claims", type=Path, default=None, metavar="DIR",
                       help="also write the run's claims into DIR (as harness leaderboard "
                            "--claims does)")
    bench.add_argument("--db", type=Path, default=None,
                       help="results database (default $HARNESS_HOME/results.sqlite)")
    bench.add_argument("--out", type=Path, default=None, help="also write the markdown here")
    bench.add_argument("--json", type=Path, default=None, dest="json_out",
                       help="write one JSON record per cell here")
    bench.add_argument("--no-checks", action="store_true",
                       help="leave out the automatic PGD cell at eps 0.5 per model and defense "
                            "(the large-eps check)")
    bench.add_argument("--no-cache", action="store_true",
                       help="retrain and re-evaluate even what is cached")
    bench.add_argument("--refuse-damaged", action="store_true",
                       help="a damaged cached model fails its cells instead of being moved to "
                            "models/damaged/ and retrained")
    bench.add_argument("--quiet", action="store_true", help="no progress bars")
    bench.add_argument("--executor", choices=("serial", "local", "ray"), default="serial",
                       help="serial (default): this process; local: worker processes on this "
                            "machine (one per GPU, or the CPUs split); ray: Ray tasks, on a "
                            "local Ray or a cluster")
    bench.add_argument("--workers", type=int, default=None,
                       help="worker processes (local) or parallel tasks (ray); default: one "
                            "per GPU, else one per CPU")
    bench.add_argument("--gpus-per-task", type=float, default=None,
                       help="the share of a GPU each task takes, e.g. 0.25 packs four small "
                            "cells on one GPU (local, ray)")
    bench.add_argument("--ray-address", default=None,
                       help="an existing Ray cluster to run on (default $RAY_ADDRESS, else "
                            "a local Ray)")
    bench.add_argument("--shared-home", action="store_true",
                       help="with ray: HARNESS_HOME is on storage every node shares, so "
                            "trained weights travel through it, not Ray's object store")
    bench.add_argument("--format", choices=("summary", "markdown", "json"), default=None,
                       help="what to print: a summary of at most 100 columns (the default on a "
                            "terminal), the full markdown page (the default when piped) or the "
                            "results JSON")

    plugins = sub.add_parser("plugins", help="count what the loaded plugins registered")
    plugins_shown = plugins.add_mutually_exclusive_group()
    plugins_shown.add_argument("--verbose", action="store_true",
                               help="one row per plugin: distribution, version, registered")
    plugins_shown.add_argument("--json", action="store_true")

    lister = sub.add_parser("list", help="list registered datasets, models, attacks or defenses")
    lister.add_argument("kind", choices=sorted(KIND_PLURALS))
    shown = lister.add_mutually_exclusive_group()
    shown.add_argument("--long", action="store_true", help="every column, as wide as it needs")
    shown.add_argument("--options", action="store_true",
                       help="each one's declared options: type and bounds, default, help")
    shown.add_argument("--json", action="store_true")
    lister.add_argument("--variants", metavar="FAMILY", default=None,
                        help="list the variants of a model family, e.g. --variants timm")

    board = sub.add_parser("leaderboard", help="render the stored results as markdown")
    board.add_argument("--db", type=Path, default=None)
    board.add_argument("--results", type=Path, default=None, metavar="FILE.json",
                       help="render the records of a `harness bench --json` file instead")
    board.add_argument("--dataset", type=names, default=None,
                       help="only these datasets (comma-separated)")
    board.add_argument("--out", type=Path, default=None,
                       help="write the markdown here, and its figures (PNG) beside it")
    board.add_argument("--no-figures", action="store_true",
                       help="with --out: no figures (and none embedded)")
    board.add_argument("--save-results", type=Path, default=None, metavar="FILE.json",
                       help="also write the records the page is rendered from (the file "
                            "--results reads back)")
    board.add_argument("--claims", type=Path, default=None, metavar="DIR",
                       help="refresh the claims in DIR (DIR/DATASET/MODEL--DEFENSE.json, "
                            "RobustBench's model_info shape): keep each one's human fields, "
                            "recompute and check the rest, add new ones; the page is then "
                            "printed only when --out is not given either")
    report = sub.add_parser("report", help="print a report plugin's text (e.g. the paper's "
                                           "tables beside ours)")
    report.add_argument("name", help="the report, e.g. paper")
    for flag, kwargs in (("--db", {"type": Path, "default": None}),
                         ("--results", {"type": Path, "default": None, "action": "append"})):
        report.add_argument(flag, **kwargs)
    report.add_argument("--dataset", type=names, default=None)
    return parser


