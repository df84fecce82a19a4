"""The Provenance section of a page: versions, hardware, plugins, supplied models, seeds,
compute and wall time, peak memory and the commands of the runs behind the records."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from harness.contracts.provenance import provenance_lines
from harness.contracts.records import Result, ResultSet


def distinct(values: Iterable[Any]) -> str:
    """The distinct non-empty values, sorted and joined (``unknown`` when none)."""
    seen = sorted({str(v) for v in values if v not in (None, "")})
    return ", ".join(seen) if seen else "unknown"


def _wall_time(results: ResultSet) -> list[str]:
    """The footer line of the runs' wall-clock time: each run from its start to its last
    stored cell, summed over the runs (none when no record says when it was stored)."""
    ends: dict[str, datetime] = {}
    for r in results.records:
        if r.created_at:
            end = datetime.fromisoformat(r.created_at)
            ends[r.run_id] = max(end, ends.get(r.run_id, end))
    spans = [(end - datetime.fromisoformat(results.runs[run]["timestamp"])).total_seconds()
             for run, end in ends.items() if results.runs.get(run, {}).get("timestamp")]
    spans = [s for s in spans if s > 0]     # a run that only reused earlier cells took none
    if not spans:
        return []
    return [f"- wall time: {sum(spans) / 60:.1f} min over {len(spans)} "
            f"run{'s' if len(spans) > 1 else ''} (each from its start to its last stored cell)"]


def _compute_time(records: list[Result]) -> str:
    """Training time of the distinct models plus the time of every cell, as measured."""
    trained: dict[str, float] = {}
    for r in records:
        if r.train_key and r.train_seconds is not None:
            trained[r.train_key] = r.train_seconds
    cells = sum(r.attack_seconds for r in records
                if r.attack_seconds is not None and not math.isnan(r.attack_seconds))
    train = sum(trained.values())
    return (f"{(train + cells) / 60:.1f} min: training {train / 60:.1f} min ({len(trained)} "
            f"models), attacks and defenses {cells / 60:.1f} min "
            f"({sum(1 for r in records if r.ok)} cells), summed over parallel workers")


def footer(results: ResultSet) -> str:
    """Versions, hardware and provenance of the runs behind ``results``."""
    metas = [results.metadata(r) for r in results.records]
    libs: dict[str, set[str]] = {}
    plugins: dict[str, set[str]] = {}
    for m in metas:
        for name, ver in (m.get("libraries") or {}).items():
            libs.setdefault(name, set()).add(ver)
        for name, ver in (m.get("plugins") or {}).items():
            plugins.setdefault(name, set()).add(ver)
    stamps = [m["timestamp"] for m in metas if m.get("timestamp")]
    lines = [
        f"- harness: {distinct(m.get('harness') for m in metas)}; "
        f"git commit: {distinct(m.get('git_commit') for m in metas)}",
        f"- hardware: {distinct(m.get('device_name') for m in metas)} "
        f"(device {distinct(m.get('device') for m in metas)})",
        f"- python: {distinct(m.get('python') for m in metas)}; "
        + "; ".join(f"{n}: {', '.join(sorted(v))}" for n, v in sorted(libs.items())),
        "- plugins: " + "; ".join(f"{n}: {', '.join(sorted(v))}"
                                  for n, v in sorted(plugins.items())),
        *provenance_lines(results.records),
        *supplied_lines(results.records),
        f"- seed: {distinct(m.get('seed') for m in metas)}; runs from "
        f"{min(stamps, default='?')} to {max(stamps, default='?')} (UTC)",
        f"- measured compute: {_compute_time(results.records)}",
        *_wall_time(results),
        *_peak_memory(results.records),
        f"- commands: {distinct(m.get('command') for m in metas)}",
    ]
    return "\n".join(lines)


def supplied_lines(records: Iterable[Result]) -> list[str]:
    """The footer line naming each supplied model (trained elsewhere, evaluated as it is) by
    its file and SHA-256; none when every model was trained here."""
    seen: dict[str, str] = {}
    for r in records:
        supplied = (r.config.get("training") or {}).get("supplied")
        if supplied:
            source = f" from {supplied['file']}" if supplied.get("file") else ""
            seen.setdefault(r.model, f"{r.model}{source} (SHA-256 {supplied['sha256']})")
    if not seen:
        return []
    return ["- supplied models, evaluated as they are: " + "; ".join(seen[k]
                                                                    for k in sorted(seen))]


def _peak_memory(records: Iterable[Result]) -> list[str]:
    """The footer line of the largest peak memory a cell's process recorded (none: [])."""
    peaks = [r.config["peak_memory_mib"] for r in records if r.config.get("peak_memory_mib")]
    host = [p["host"] for p in peaks if p.get("host") is not None]
    gpu = [p["gpu"] for p in peaks if p.get("gpu") is not None]
    if not host and not gpu:
        return []
    parts = [f"host {max(host) / 1024:.1f} GiB (largest resident set)"] if host else []
    parts += [f"GPU {max(gpu) / 1024:.1f} GiB (tensors)"] if gpu else []
    return [f"- peak memory of the largest process: {', '.join(parts)}"]
