"""``harness bench``: the run's configuration from the command line, checked before any work,
then the run, the page or summary, the results file and the claims."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from harness.cli.other import write_claims_of
from harness.contracts.options import parse_assignments
from harness.util.errors import UsageError
from harness.util.files import harness_home


def selection(args: argparse.Namespace, kind: str, registry: Any) -> tuple[str, ...]:
    """The names ``--KIND`` gives, or the registry's defaults when it was not given."""
    from harness.planning.plan import default_names

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
    from harness.planning.plan import is_supplied_name

    chosen = selection(args, "defense", registry)
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
    from harness.planning.plan import is_supplied_name

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
    from harness.planning.plan import BenchConfig, check_config

    models = selection(args, "model", registry)
    config = BenchConfig(
        datasets=selection(args, "dataset", registry), models=models,
        attacks=selection(args, "attack", registry),
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
        chunk_images=args.chunk_images,
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
    from harness.util.files import folder_problem, refuse_unwritable

    refuse_unwritable([("--out", args.out), ("--json", args.json_out)],
                      [("--claims", args.claims)])
    for folder in (home, home / "models", home / "adversarial"):
        problem = folder_problem(folder)
        if problem:
            raise UsageError(f"HARNESS_HOME {home} cannot be used: {problem}")


def _write_outputs(args: argparse.Namespace, markdown: str, results_text: str, db: Path) -> int:
    """Write ``--out`` and ``--json``; a failure is one line saying how to render the stored
    results instead. Returns how many could not be written."""
    unwritten = 0
    for path, text, render in ((args.out, markdown, "--out"),
                               (args.json_out, results_text, "--save-results")):
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


def bench(args: argparse.Namespace, argv: list[str]) -> int:
    """``harness bench``: run the cross-product, print it, write what was asked; the exit code."""
    from harness.planning.loading import load_registry, unknown_disabled
    from harness.report.listing import terminal_width
    from harness.report.reporting import Report
    from harness.results.results_file import results_json
    from harness.results.store import ResultStore
    from harness.run.executors import ExecutorOptions, make_executor
    from harness.run.model_cache import ModelCache
    from harness.run.runner import Runner

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
             "json": lambda: results_json(outcome.results)}[_output_format(args)]()
    print(shown, end="" if shown.endswith("\n") else "\n")
    unwritten = _write_outputs(args, markdown, results_json(outcome.results), db)
    if args.claims is not None:
        write_claims_of(outcome.results, report.flags_by_cell, args.claims)
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


