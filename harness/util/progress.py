"""Progress bars on stderr, so stdout carries only the result table."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def progress_bar(*, total: int, desc: str, unit: str, enabled: bool = True, initial: int = 0):
    """A tqdm bar on stderr; disabled when ``enabled`` is false or stderr is not a terminal
    (a log file gets no carriage-return churn)."""
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr,
                disable=not enabled or not sys.stderr.isatty(), leave=False,
                dynamic_ncols=True)
