"""The ``harness`` command line: parses arguments, calls the core, prints. Nothing more."""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, UsageError
from harness.options import parse_assignments
from harness.settings import AUGMENTATIONS

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
    bench.add_argument("--dataset", type=_names, default=None,
                       help=f"comma-separated dataset names or 'all' {defaults}")
    bench.add_argument("--model", type=_names, default=None,
                       help="comma-separated model names, e.g. paper-cnn,timm:resnet18, or "
                            f"'all' {defaults}")
    bench.add_argument("--attack", type=_names, default=None,
                       help=f"comma-separated attack names or 'all' {defaults}")
    bench.add_argument("--defense", type=_names, default=None,
                       help=f"comma-separated defense names or 'all' {defaults}; the "
                            "undefended baseline is always added")
    bench.add_argument("--eps", type=_eps_list, default=None,
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
    board.add_argument("--dataset", type=_names, default=None,
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
    report.add_argument("--dataset", type=_names, default=None)
    return parser


def _selection(args: argparse.Namespace, kind: str, registry: Any) -> tuple[str, ...]:
    """The names ``--KIND`` gives, or the registry's defaults when it was not given."""
    from harness.plan import default_names

    given = getattr(args, kind)
    if given is None:
        return tuple(default_names(kind, registry))
    if not given:
        raise UsageError(f"--{kind} names no {kind}: give at least one name, or 'all'")
    return tuple(given)


def _default_defenses(args: argparse.Namespace, models: tuple[str, ...],
                      registry: Any) -> tuple[str, ...]:
    """``--defense``; when it was not given and every model is supplied trained, the default
    defenses less the training ones (a supplied model is evaluated as it is)."""
    from harness.plan import is_supplied_name

    chosen = _selection(args, "defense", registry)
    if args.defense is not None or not all(is_supplied_name(m, registry) for m in models):
        return chosen
    kept = tuple(n for n in chosen if registry.defense(n).baseline
                 or registry.defense(n).stage != "training")
    # an empty tuple would mean "the defaults": name the baseline instead
    return kept or tuple(n for n, spec in registry.defenses.items() if spec.baseline)


def _with_reported(args: argparse.Namespace, models: tuple[str, ...],
                   registry: Any) -> dict[str, dict[str, Any]]:
    """``--model-opt``, with ``--reported`` as the ``reported`` option of the one supplied
    model of the run."""
    from harness.plan import is_supplied_name

    given = parse_assignments(args.model_opt, "--model-opt")
    if args.reported is None:
        return given
    supplied = [m for m in models if is_supplied_name(m, registry)]
    if len(supplied) != 1:
        raise UsageError(f"--reported is the claim of one supplied model (KIND:PATH or "
                         f"ARCH@WEIGHTS), and this run has {len(supplied)}; use --model-opt "
                         "MODEL.reported=ACC for each")
    given.setdefault(supplied[0], {})["reported"] = args.reported
    return given


def _bench_config(args: argparse.Namespace, registry: Any) -> Any:
    from harness.plan import BenchConfig, check_config

    models = _selection(args, "model", registry)
    config = BenchConfig(
        datasets=_selection(args, "dataset", registry), models=models,
        attacks=_selection(args, "attack", registry),
        defenses=_default_defenses(args, models, registry),
        eps=args.eps, baseline=not args.no_baseline, n_train=args.n_train, n_test=args.n_test,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, patience=args.patience,
        seed=args.seed, device=args.device, data_root=args.data_root, download=args.download,
        image_size=args.image_size, attack_batch_size=args.attack_batch_size,
        model_options=_with_reported(args, models, registry),
        attack_options=parse_assignments(args.attack_opt, "--attack-opt"),
        defense_options=parse_assignments(args.defense_opt, "--defense-opt"),
        no_cache=args.no_cache, checks=not args.no_checks, amp=args.amp,
        cudnn_benchmark=args.cudnn_benchmark, early_stop_on=args.early_stop_on,
        early_stop_eps=args.early_stop_eps, augment=args.augment,
    )
    check_config(config)
    return config


def _output_format(args: argparse.Namespace) -> str:
    """``--format``, else the summary on a terminal and the full markdown when piped."""
    if args.format:
        return str(args.format)
    return "summary" if sys.stdout.isatty() else "markdown"


def _check_outputs(args: argparse.Namespace, home: Path) -> None:
    """``--out``, ``--json`` and ``HARNESS_HOME`` usable, before any work (UsageError)."""
    from harness.files import folder_problem, output_problem

    for option, path in (("--out", args.out), ("--json", args.json_out)):
        problem = output_problem(path) if path is not None else None
        if problem:
            raise UsageError(f"{option}: cannot write {path}: {problem}")
    problem = folder_problem(args.claims) if args.claims is not None else None
    if problem:
        raise UsageError(f"--claims: cannot write {args.claims}: {problem}")
    for folder in (home, home / "models", home / "adversarial"):
        problem = folder_problem(folder)
        if problem:
            raise UsageError(f"HARNESS_HOME {home} cannot be used: {problem}")


def _write_outputs(args: argparse.Namespace, markdown: str, results_json: str, db: Path) -> int:
    """Write ``--out`` and ``--json``; a failure is one line saying how to render the stored
    results instead. Returns how many could not be written."""
    unwritten = 0
    for path, text, render in ((args.out, markdown, "--out"),
                               (args.json_out, results_json, "--save-results")):
        if path is None:
            continue
        try:
            path.write_text(text)
        except OSError as exc:
            unwritten += 1
            print(f"harness: error: could not write {path} ({exc.strerror or exc}); the results "
                  f"are stored in {db}: `harness leaderboard --db {db} {render} FILE` writes "
                  "them", file=sys.stderr)
    return unwritten


def _bench(args: argparse.Namespace, argv: list[str]) -> int:
    from harness.executors import ExecutorOptions, make_executor
    from harness.listing import terminal_width
    from harness.model_cache import ModelCache
    from harness.plugins import load_registry, unknown_disabled
    from harness.reporting import Report
    from harness.runner import Runner
    from harness.store import ResultStore

    problems = unknown_disabled(args.disable_plugin)
    if problems:
        raise UsageError(f"--disable-plugin: {problems[0]}")
    registry = load_registry(strict=True, disabled=args.disable_plugin)
    config = _bench_config(args, registry)
    home = harness_home()
    _check_outputs(args, home)
    db = args.db or home / "results.sqlite"
    store = ResultStore(db)
    store.check()
    executor = make_executor(ExecutorOptions(
        args.executor, args.workers, args.gpus_per_task, args.ray_address, args.shared_home),
        config.device)
    runner = Runner(config, registry, store,
                    ModelCache(home / "models", refuse_damaged=args.refuse_damaged),
                    show_progress=not args.quiet, argv=argv,
                    disabled_plugins=tuple(args.disable_plugin), executor=executor)
    outcome = runner.run()
    report = Report.of(outcome.results, registry)
    markdown = report.markdown()
    shown = {"summary": lambda: report.summary(min(100, terminal_width())),
             "markdown": lambda: markdown,
             "json": outcome.results.to_json}[_output_format(args)]()
    print(shown, end="" if shown.endswith("\n") else "\n")
    unwritten = _write_outputs(args, markdown, outcome.results.to_json(), db)
    if args.claims is not None:
        _write_claims(outcome.results, report.flags_by_cell, args.claims)
    for flag in report.flags:
        print(f"harness: check {flag.code} failed: {flag.message}", file=sys.stderr)
    if outcome.not_applicable:
        print(f"harness: {len(outcome.not_applicable)} pairings are n/a (see 'Not applicable' "
              "for why)", file=sys.stderr)
    if outcome.failed:
        print(f"harness: {len(outcome.failed)} of {len(outcome.records)} cells failed "
              "(see the status column)", file=sys.stderr)
        return 1
    return 1 if unwritten else 0


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
    from harness.listing import plugin_counts, plugin_rows, plugin_table, terminal_width

    registry = _listing_registry(args)
    if args.json:
        print(json.dumps({"plugins": plugin_rows(registry), "errors": registry.load_errors},
                         indent=2))
    elif args.verbose:
        print("\n".join(plugin_table(plugin_rows(registry), terminal_width())))
    else:
        print("\n".join(plugin_counts(registry)))
    return 0


def _list(args: argparse.Namespace) -> int:
    from harness.listing import (
        long_listing,
        options_listing,
        short_listing,
        spec_rows,
        terminal_width,
    )

    kind = KIND_PLURALS[args.kind]
    if args.variants is not None and kind != "model":
        raise UsageError("--variants lists a model family's variants: harness list models "
                         "--variants timm")
    if args.options and kind == "dataset":
        raise UsageError("datasets declare no options; --options lists those of models, "
                         "attacks and defenses")
    registry = _listing_registry(args)
    if args.variants is not None:
        spec = registry.get("model", args.variants)
        if not spec.takes_variant or spec.list_variants is None:
            raise UsageError(f"model '{args.variants}' is not a family with variants")
        variants = [f"{spec.name}:{v}" for v in spec.list_variants()]
        print(json.dumps(variants, indent=2) if args.json else "\n".join(variants))
        return 0
    rows = spec_rows(registry, kind)
    if args.json:
        print(json.dumps(rows, indent=2, default=repr))
    elif args.long:
        print(long_listing(kind, rows))
    elif args.options:
        print("\n".join(options_listing(rows, terminal_width())))
    else:
        print("\n".join(short_listing(kind, rows, terminal_width())))
    return 0


def _load_results(args: argparse.Namespace, registry: Any) -> Any:
    """The records ``harness leaderboard``/``report`` render: a results file or the store."""
    from harness.records import ResultSet
    from harness.reporting import with_roles
    from harness.store import ResultStore

    if args.results:
        results = ResultSet()
        for path in args.results if isinstance(args.results, list) else [args.results]:
            if not path.is_file():
                raise UsageError(f"no results file at {path}")
            try:
                part = ResultSet.from_json(path.read_text())
            except OSError as exc:
                raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise UsageError(f"{path} is not a `harness bench --json` file: "
                                 f"{type(exc).__name__}: {exc}") from None
            results.records += part.records
            results.runs.update(part.runs)
    else:
        db = args.db or harness_home() / "results.sqlite"
        if not db.exists():
            raise UsageError(f"no results database at {db}: run `harness bench` first, or "
                             "pass --db")
        store = ResultStore(db)
        store.check(write=False)
        try:
            results = store.latest_records()
        except (sqlite3.DatabaseError, ValueError, TypeError) as exc:
            raise UsageError(f"results database {db} cannot be read: {exc}") from None
        finally:
            store.close()
    if args.dataset:
        results = results.only(r for r in results.records if r.dataset in args.dataset)
    return with_roles(results, registry)


def _leaderboard(args: argparse.Namespace) -> int:
    from harness.files import folder_problem, output_problem
    from harness.reporting import Report

    for flag, path in (("--out", args.out), ("--save-results", args.save_results)):
        problem = output_problem(path) if path is not None else None
        if problem:
            raise UsageError(f"{flag}: cannot write {path}: {problem}")
    problem = folder_problem(args.claims) if args.claims is not None else None
    if problem:
        raise UsageError(f"--claims: cannot write {args.claims}: {problem}")
    registry = _listing_registry(args)
    results = _load_results(args, registry)
    report = Report.of(results, registry)
    stem = args.out.stem if args.out and not args.no_figures else None
    markdown = report.markdown(figures_stem=stem)
    try:
        if args.save_results:
            args.save_results.write_text(results.to_json())
        if args.out:
            args.out.write_text(markdown)
    except OSError as exc:
        raise HarnessError(f"could not write {exc.filename}: {exc.strerror or exc}") from None
    if args.claims:
        _write_claims(results, report.flags_by_cell, args.claims)
    elif not args.out:
        print(markdown, end="")
    if stem:
        for path in report.draw(stem, args.out.parent):
            print(f"harness: drew {path}", file=sys.stderr)
    return 0


def _write_claims(results: Any, flags: dict[str, str], folder: Path) -> None:
    """``harness leaderboard --claims DIR``: refresh the claims, say what changed on stderr."""
    from harness.claims import write_claims

    try:
        done = write_claims(results, flags, folder)
    except OSError as exc:
        raise HarnessError(f"could not write {exc.filename}: {exc.strerror or exc}") from None
    for path in done.written:
        print(f"harness: wrote claim {path}", file=sys.stderr)
    print(f"harness: claims in {folder}: {len(done.written)} written, {len(done.unchanged)} "
          f"unchanged, {len(done.untouched)} without results here (left as they are)",
          file=sys.stderr)


def _report(args: argparse.Namespace) -> int:
    from harness.reporting import reports_of

    registry = _listing_registry(args)
    reports = {r.name: r for r in reports_of(registry) if r.text is not None}
    if args.name not in reports:
        from harness.registry import unknown_name_message

        raise UsageError(unknown_name_message("report", args.name, reports))
    results = _load_results(args, registry)
    text = reports[args.name].text(results)  # type: ignore[misc]
    print(text, end="" if text.endswith("\n") else "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``harness`` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    handlers = {"bench": lambda: _bench(args, argv), "plugins": lambda: _plugins(args),
                "list": lambda: _list(args), "leaderboard": lambda: _leaderboard(args),
                "report": lambda: _report(args)}
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
