"""Per-image outcomes of evasion cells, and the per-image worst case over attacks.

Each evasion cell keeps, in its record, which test images it saw and which of them stayed
correctly classified after its attack: two bit masks over the positions of the dataset's test
set (packed, zlib-compressed, base64). From them, for each (dataset, model, defense, eps),
:func:`worst_cases` gives the share of the images that *every* attack of the group left
correctly classified, over the images all of them saw (their intersection: cells run on
fewer images, e.g. a slow attack's budget, shrink it), and for each attack the images that
only it broke: which attacks contribute the last points.

Pure Python (no torch, no numpy), so reports and pages built from results files stay cheap.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.contracts.provenance import provided_name
from harness.contracts.records import Result

OUTCOMES_FORMAT = 1


def _pack(bits: Sequence[bool]) -> str:
    """Bits (first bit = position 0) as base64 of the zlib-compressed bytes, LSB first."""
    data = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        if bit:
            data[i >> 3] |= 1 << (i & 7)
    return base64.b64encode(zlib.compress(bytes(data), 9)).decode("ascii")


def _unpack(text: str, length: int) -> int:
    """The bits of :func:`_pack` as one integer (bit i = position i), ``length`` bits."""
    data = zlib.decompress(base64.b64decode(text))
    return int.from_bytes(data, "little") & ((1 << length) - 1)


def encode(positions: Iterable[int], correct: Iterable[bool]) -> dict[str, Any]:
    """The ``outcomes`` of a record: the test-set ``positions`` a cell saw and, for each, whether
    its adversarial example was still classified correctly."""
    pairs = list(zip(positions, correct, strict=True))
    length = max((p for p, _ in pairs), default=-1) + 1
    seen = [False] * length
    ok = [False] * length
    for position, still_correct in pairs:
        seen[position] = True
        ok[position] = bool(still_correct)
    return {"format": OUTCOMES_FORMAT, "length": length, "seen": _pack(seen),
            "correct": _pack(ok)}


@dataclass(frozen=True)
class Outcomes:
    """A cell's per-image outcomes as bit sets over test-set positions."""

    seen: int
    correct: int

    @classmethod
    def of(cls, record: Result) -> Outcomes | None:
        """The record's outcomes (None when it has none: an older record or a failed cell)."""
        data = record.outcomes
        if not data or data.get("format") != OUTCOMES_FORMAT:
            return None
        length = int(data["length"])
        return cls(_unpack(data["seen"], length), _unpack(data["correct"], length))


@dataclass(frozen=True)
class WorstCase:
    """The per-image worst case of one (dataset, model, defense, eps) over its attacks.

    ``robust_acc`` is the share of the ``n`` images every attack saw that no attack broke;
    ``attacks`` the attacks counted (with ``adaptive`` ones labelled); ``sole_breaks`` for
    each attack the images only it broke (the points it alone takes off the worst case);
    ``uncounted`` the cells of the group without per-image outcomes (older records)."""

    dataset: str
    model: str
    defense: str
    eps: float
    train_key: str
    robust_acc: float
    n: int
    attacks: tuple[str, ...]
    sole_breaks: dict[str, int] = field(default_factory=dict)
    uncounted: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str, str, float, str]:
        """``(dataset, model, defense, eps, train_key)``: a defense trained twice (other
        options) is two groups."""
        return (self.dataset, self.model, self.defense, self.eps, self.train_key)


def attack_label(record: Result) -> str:
    """The attack's name with the options the run gave it, the distribution that provided it
    when not the harness's own (:mod:`harness.contracts.provenance`) and how it was made adaptive,
    when
    it was: ``pgd``, ``pgd(restarts=10,steps=50)``, ``fgsm (acme-attacks 1.0)``,
    ``pgd [bpda]``."""
    given = record.config.get("attack_options") or {}
    options = ",".join(f"{k}={v}" for k, v in sorted(given.items()))
    name = provided_name(f"{record.attack}({options})" if options else record.attack,
                         record, "attack")
    return f"{name} [{record.adaptive}]" if record.adaptive else name


def _counted(record: Result) -> bool:
    """An ok evasion-like cell at an eps, not an automatic check cell."""
    return (record.ok and record.eps is not None and record.robust_acc is not None
            and not record.config.get("check"))


def worst_cases(records: Iterable[Result]) -> list[WorstCase]:
    """The worst case of every (dataset, model, defense, eps) of one trained model with at least
    one cell that has per-image outcomes, in order of first appearance."""
    groups: dict[tuple[str, str, str, float, str], list[Result]] = {}
    for r in records:
        if _counted(r):
            assert r.eps is not None
            groups.setdefault((r.dataset, r.model, r.defense, r.eps, r.train_key), []).append(r)
    out = []
    for (dataset, model, defense, eps, train_key), cells in groups.items():
        known = [(attack_label(r), Outcomes.of(r)) for r in cells]
        with_outcomes = [(name, o) for name, o in known if o is not None]
        if not with_outcomes:
            continue
        seen = -1
        for _, o in with_outcomes:
            seen &= o.seen
        survived = seen
        for _, o in with_outcomes:
            survived &= o.correct
        sole = {}
        for name, o in with_outcomes:
            others = seen
            for other, p in with_outcomes:
                if other != name:
                    others &= p.correct
            sole[name] = (others & ~o.correct & seen).bit_count()
        n = seen.bit_count() if seen >= 0 else 0
        out.append(WorstCase(
            dataset, model, defense, eps, train_key,
            survived.bit_count() / n if n else float("nan"), n,
            tuple(name for name, _ in with_outcomes), sole,
            tuple(name for name, o in known if o is None)))
    return out
