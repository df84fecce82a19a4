"""The listing and rendering subcommands: ``harness plugins``, ``list``, ``leaderboard`` and
``report``."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

from harness.cli.parser import KIND_PLURALS
from harness.util.errors import HarnessError, UsageError
from harness.util.files import harness_home


def listing_registry(args: argparse.Namespace):
    """Load plugins leniently: every broken plugin is reported once on stderr, then skipped."""
    import warnings

    from harness.planning.loading import load_registry, unknown_disabled

    for problem in unknown_disabled(args.disable_plugin):
        print(f"harness: warning: --disable-plugin: {problem}", file=sys.stderr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        registry = load_registry(strict=False, disabled=args.disable_plugin)
    for error in registry.load_errors:
        print(f"harness: error: {error}", file=sys.stderr)
    return registry


def plugins(args: argparse.Namespace) -> int:
    """``harness plugins``: what the loaded plugins registered."""
    from harness.report.listing import plugin_counts, plugin_rows, plugin_table, terminal_width

    registry = listing_registry(args)
    if args.json:
        print(json.dumps({"plugins": plugin_rows(registry), "errors": registry.load_errors},
                         indent=2))
    elif args.verbose:
        print("\n".join(plugin_table(plugin_rows(registry), terminal_width())))
    else:
        print("\n".join(plugin_counts(registry)))
    return 0


def list_specs(args: argparse.Namespace) -> int:
    """``harness list KIND``: the registered specs of one kind."""
    from harness.report.listing import (
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
    registry = listing_registry(args)
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
    from harness.contracts.records import ResultSet
    from harness.report.reporting import with_roles
    from harness.results.store import ResultStore

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


def leaderboard(args: argparse.Namespace) -> int:
    """``harness leaderboard``: the stored results (or a results file) as a page, and claims."""
    from harness.report.reporting import Report
    from harness.results.results_file import results_json
    from harness.util.files import refuse_unwritable

    refuse_unwritable([("--out", args.out), ("--save-results", args.save_results)],
                      [("--claims", args.claims)])
    registry = listing_registry(args)
    results = _load_results(args, registry)
    report = Report.of(results, registry)
    stem = args.out.stem if args.out and not args.no_figures else None
    markdown = report.markdown(figures_stem=stem)
    try:
        if args.save_results:
            args.save_results.write_text(results_json(results))
        if args.out:
            args.out.write_text(markdown)
    except OSError as exc:
        raise HarnessError(f"could not write {exc.filename}: {exc.strerror or exc}") from None
    if args.claims:
        write_claims_of(results, report.flags_by_cell, args.claims)
    elif not args.out:
        print(markdown, end="")
    if stem:
        for path in report.draw(stem, args.out.parent):
            print(f"harness: drew {path}", file=sys.stderr)
    return 0


def write_claims_of(results: Any, flags: dict[str, str], folder: Path) -> None:
    """``harness leaderboard --claims DIR``: refresh the claims, say what changed on stderr."""
    from harness.report.claims import write_claims

    try:
        done = write_claims(results, flags, folder)
    except OSError as exc:
        raise HarnessError(f"could not write {exc.filename}: {exc.strerror or exc}") from None
    for path in done.written:
        print(f"harness: wrote claim {path}", file=sys.stderr)
    print(f"harness: claims in {folder}: {len(done.written)} written, {len(done.unchanged)} "
          f"unchanged, {len(done.untouched)} without results here (left as they are)",
          file=sys.stderr)


def report(args: argparse.Namespace) -> int:
    """``harness report NAME``: a report plugin's text."""
    from harness.report.reporting import reports_of

    registry = listing_registry(args)
    reports = {r.name: r for r in reports_of(registry) if r.text is not None}
    if args.name not in reports:
        from harness.planning.registry import unknown_name_message

        raise UsageError(unknown_name_message("report", args.name, reports))
    results = _load_results(args, registry)
    text = reports[args.name].text(results)  # type: ignore[misc]
    print(text, end="" if text.endswith("\n") else "\n")
    return 0


