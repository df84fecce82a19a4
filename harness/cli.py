"""The ``harness`` command line: parses arguments, calls the core, prints. Nothing more."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, UsageError
from harness.options import parse_assignments

KIND_PLURALS = {"datasets": "dataset", "models": "model", "attacks": "attack",
                "defenses": "defense"}


def harness_home() -> Path:
    """``$HARNESS_HOME``, else ``$XDG_CACHE_HOME/harness``, else ``~/.cache/harness``."""
    if os.environ.get("HARNESS_HOME"):
        return Path(os.environ["HARNESS_HOME"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "harness"


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def _eps_list(text: str) -> tuple[float, ...]:
    values = []
    for item in _names(text):
        try:
            value = float(item)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{item}' is not a number") from None
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
                        help="do not load this plugin (entry-point name); repeatable; also "
                             "HARNESS_DISABLE_PLUGINS=a,b")
    sub = parser.add_subparsers(dest="command", required=True)

    bench = sub.add_parser("bench", help="run the cross-product and print the leaderboard")
    bench.add_argument("--dataset", type=_names, default=("digits",),
                       help="comma-separated dataset names or 'all' (default: digits)")
    bench.add_argument("--model", type=_names, default=("paper-cnn",),
                       help="comma-separated model names, e.g. paper-cnn,timm:resnet18, or "
                            "'all' (default: paper-cnn)")
    bench.add_argument("--attack", type=_names, default=("fgsm",),
                       help="comma-separated attack names or 'all' (default: fgsm)")
    bench.add_argument("--defense", type=_names, default=("none", "advtrain"),
                       help="comma-separated defense names or 'all' (default: none,advtrain)")
    bench.add_argument("--eps", type=_eps_list, default=None,
                       help="comma-separated eps in pixel units, e.g. 0.05,0.1,0.2 "
                            "(default: each dataset's: 0.1 digits/MNIST, 0.03 CIFAR-10)")
    bench.add_argument("--no-baseline", action="store_true",
                       help="do not add the undefended 'none' reference row")
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
                       help="resize images to this side (default: native; ImageNet 224)")
    bench.add_argument("--attack-batch-size", type=int, default=256)
    for kind in ("model", "attack", "defense"):
        bench.add_argument(f"--{kind}-opt", action="append", default=[],
                           metavar="NAME.OPTION=VALUE",
                           help=f"an option of one {kind} plugin; repeatable")
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
    bench.add_argument("--quiet", action="store_true", help="no progress bars")

    plugins = sub.add_parser("plugins", help="list loaded plugins and what they registered")
    plugins.add_argument("--json", action="store_true")

    lister = sub.add_parser("list", help="list registered datasets, models, attacks or defenses")
    lister.add_argument("kind", choices=sorted(KIND_PLURALS))
    lister.add_argument("--json", action="store_true")
    lister.add_argument("--variants", metavar="FAMILY", default=None,
                        help="list the variants of a model family, e.g. --variants timm")

    board = sub.add_parser("leaderboard", help="render the stored results as markdown")
    board.add_argument("--db", type=Path, default=None)
    board.add_argument("--results", type=Path, default=None, metavar="FILE.json",
                       help="render the records of a `harness bench --json` file instead")
    board.add_argument("--dataset", type=_names, default=None,
                       help="only these datasets (comma-separated)")
    board.add_argument("--out", type=Path, default=None,
                       help="write the markdown here, and its figures (PNG) beside it")
    board.add_argument("--no-figures", action="store_true",
                       help="with --out: no figures (and none embedded)")
    board.add_argument("--save-results", type=Path, default=None, metavar="FILE.json",
                       help="also write the records the page is rendered from (the file "
                            "--results reads back)")
    return parser


def _bench(args: argparse.Namespace, argv: list[str]) -> int:
    from harness.leaderboard import render
    from harness.model_cache import ModelCache
    from harness.plan import BenchConfig
    from harness.plugins import load_registry, unknown_disabled
    from harness.runner import Runner
    from harness.store import ResultStore

    problems = unknown_disabled(args.disable_plugin)
    if problems:
        raise UsageError(f"--disable-plugin: {problems[0]}")
    registry = load_registry(strict=True, disabled=args.disable_plugin)
    config = BenchConfig(
        datasets=args.dataset, models=args.model, attacks=args.attack, defenses=args.defense,
        eps=args.eps, baseline=not args.no_baseline, n_train=args.n_train, n_test=args.n_test,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, patience=args.patience,
        seed=args.seed, device=args.device, data_root=args.data_root, download=args.download,
        image_size=args.image_size, attack_batch_size=args.attack_batch_size,
        model_options=parse_assignments(args.model_opt, "--model-opt"),
        attack_options=parse_assignments(args.attack_opt, "--attack-opt"),
        defense_options=parse_assignments(args.defense_opt, "--defense-opt"),
        no_cache=args.no_cache, checks=not args.no_checks,
    )
    home = harness_home()
    for path in (args.out, args.json_out):
        if path is not None and not path.parent.exists():
            raise UsageError(f"cannot write {path}: folder {path.parent} does not exist")
    runner = Runner(config, registry, ResultStore(args.db or home / "results.sqlite"),
                    ModelCache(home / "models"), show_progress=not args.quiet, argv=argv)
    outcome = runner.run()
    markdown = render(outcome.records)
    print(markdown, end="")
    if args.out:
        args.out.write_text(markdown)
    if args.json_out:
        records = [_json_record(r) for r in outcome.records]
        args.json_out.write_text(json.dumps(records, indent=2, sort_keys=True) + "\n")
    from harness.checks import run_checks

    for flag in run_checks(outcome.records):
        print(f"harness: check {flag.code} failed: {flag.message}", file=sys.stderr)
    if outcome.not_applicable:
        print(f"harness: {len(outcome.not_applicable)} pairings are n/a (see 'Not applicable' "
              "for why)", file=sys.stderr)
    if outcome.failed:
        print(f"harness: {len(outcome.failed)} of {len(outcome.records)} cells failed "
              "(see the status column)", file=sys.stderr)
        return 1
    return 0


def _json_record(record: dict[str, Any]) -> dict[str, Any]:
    def clean(v: Any) -> Any:
        if isinstance(v, float) and math.isnan(v):
            return None
        return {k: clean(x) for k, x in v.items()} if isinstance(v, dict) else v

    return {k: clean(v) for k, v in record.items()}


def _listing_registry(args: argparse.Namespace):
    """Load plugins leniently: every broken plugin is reported once on stderr, then skipped."""
    import warnings

    from harness.plugins import load_registry, unknown_disabled

    for problem in unknown_disabled(args.disable_plugin):
        print(f"harness: warning: --disable-plugin: {problem}", file=sys.stderr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        registry = load_registry(strict=False, disabled=args.disable_plugin)
    for error in registry.load_errors:
        print(f"harness: error: {error}", file=sys.stderr)
    return registry


def _plugins(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    registry = _listing_registry(args)
    rows = []
    for name, record in sorted(registry.plugins.items()):
        rows.append({"plugin": name, "distribution": record.info.distribution,
                     "version": record.info.version, "entry_point": record.info.entry_point,
                     "registered": {k: sorted(v) for k, v in sorted(record.registered.items())}})
    if args.json:
        print(json.dumps({"plugins": rows, "errors": registry.load_errors}, indent=2))
        return 0
    table = [[r["plugin"], r["distribution"], r["version"],
              "; ".join(f"{k}s: {', '.join(v)}" for k, v in r["registered"].items())]
             for r in rows]
    print(tabulate(table, headers=["plugin", "distribution", "version", "registered"],
                   tablefmt="simple"))
    return 0


def _describe(kind: str, spec: Any) -> dict[str, Any]:
    row = {"name": f"{spec.name}:<name>" if getattr(spec, "takes_variant", False) else spec.name,
           "description": spec.description,
           "plugin": spec.plugin.name if spec.plugin else None}
    if kind == "attack":
        row.update(category=spec.category, threat_model=spec.threat_model, norm=spec.norm,
                   bounded=spec.bounded, needs=sorted(spec.needs), targeted=spec.targeted,
                   default_eps=spec.default_eps, budget_images=spec.budget_images,
                   survey_table=spec.survey_table)
    elif kind == "defense":
        answers = ["(reference)"] if spec.baseline else sorted(spec.answered)
        row.update(stage=spec.stage, baseline=spec.baseline, answers=answers,
                   needs=sorted(spec.needs))
    elif kind == "model":
        row.update(offers=sorted(spec.offers))
    elif kind == "dataset":
        row.update(default_eps=spec.default_eps, source=spec.source)
    return row


def _list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    kind = KIND_PLURALS[args.kind]
    if args.variants is not None and kind != "model":
        raise UsageError("--variants lists a model family's variants: harness list models "
                         "--variants timm")
    registry = _listing_registry(args)
    if args.variants is not None:
        spec = registry.get("model", args.variants)
        if not spec.takes_variant or spec.list_variants is None:
            raise UsageError(f"model '{args.variants}' is not a family with variants")
        variants = [f"{spec.name}:{v}" for v in spec.list_variants()]
        print(json.dumps(variants, indent=2) if args.json else "\n".join(variants))
        return 0
    rows = [_describe(kind, registry.specs[kind][n]) for n in registry.names(kind)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    columns = ["name", "description"]
    if kind == "attack":
        columns += ["category", "threat_model", "norm", "needs", "survey_table"]
    elif kind == "defense":
        columns += ["stage", "answers"]
    elif kind == "model":
        columns += ["offers"]
    elif kind == "dataset":
        columns += ["default_eps"]
    table = [[", ".join(r[c]) if isinstance(r[c], list) else r[c] for c in columns] for r in rows]
    print(tabulate(table, headers=columns, tablefmt="simple"))
    return 0


def _leaderboard(args: argparse.Namespace) -> int:
    from harness.leaderboard import render
    from harness.store import ResultStore

    if args.results is not None:
        if not args.results.is_file():
            raise UsageError(f"no results file at {args.results}")
        try:
            records = json.loads(args.results.read_text())
        except ValueError as exc:
            raise UsageError(f"{args.results} is not a `harness bench --json` file: "
                             f"{exc}") from None
    else:
        db = args.db or harness_home() / "results.sqlite"
        if not db.exists():
            raise UsageError(f"no results database at {db}: run `harness bench` first, or "
                             "pass --db")
        records = ResultStore(db).latest_records()
    if args.dataset:
        records = [r for r in records if r["dataset"] in args.dataset]
    records = [_json_record(r) for r in records]
    stem = args.out.stem if args.out and not args.no_figures else None
    markdown = render(records, figures_stem=stem)
    if args.save_results:
        args.save_results.write_text(json.dumps(records, indent=2, sort_keys=True) + "\n")
    if args.out:
        if not args.out.parent.is_dir():
            raise UsageError(f"cannot write {args.out}: folder {args.out.parent} does not exist")
        args.out.write_text(markdown)
        if stem:
            from harness.figures import draw_all

            for path in draw_all(records, stem, args.out.parent):
                print(f"harness: drew {path}", file=sys.stderr)
    else:
        print(markdown, end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``harness`` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    handlers = {"bench": lambda: _bench(args, argv), "plugins": lambda: _plugins(args),
                "list": lambda: _list(args), "leaderboard": lambda: _leaderboard(args)}
    try:
        return handlers[args.command]()
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("\nharness: interrupted. Finished cells are stored and trained models cached "
              "(unfinished training keeps its last epoch); run the same command again to "
              "resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
