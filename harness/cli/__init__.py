"""The ``harness`` command line: parses arguments, calls the core, prints. Nothing more."""

from __future__ import annotations

import sys

from harness.cli.bench import bench
from harness.cli.other import leaderboard, list_specs, plugins, report
from harness.cli.parser import build_parser
from harness.util.errors import HarnessError
from harness.util.files import harness_home

__all__ = ["build_parser", "harness_home", "main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``harness`` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    handlers = {"bench": lambda: bench(args, argv), "plugins": lambda: plugins(args),
                "list": lambda: list_specs(args), "leaderboard": lambda: leaderboard(args),
                "report": lambda: report(args)}
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
