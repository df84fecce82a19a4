"""Per-plugin options (``--attack-opt pgd.steps=20``): parsing and checking against defaults."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from harness.errors import UsageError


def parse_value(text: str) -> Any:
    """``'20'`` -> 20, ``'0.5'`` -> 0.5, ``'true'`` -> True, ``'[1,2]'`` -> [1, 2], else text."""
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    if lowered in ("none", "null"):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_assignments(items: Iterable[str], flag: str) -> dict[str, dict[str, Any]]:
    """``['pgd.steps=20', 'pgd.seed=1']`` -> ``{'pgd': {'steps': 20, 'seed': 1}}``.

    The plugin name is everything before the last dot of the key, so ``timm:resnet18.pretrained``
    works.
    """
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, eq, value = item.partition("=")
        name, dot, option = key.rpartition(".")
        if not eq or not dot or not name or not option:
            raise UsageError(f"{flag} '{item}': expected NAME.OPTION=VALUE, e.g. {flag} "
                             "pgd.steps=20")
        out.setdefault(name.strip(), {})[option.strip()] = parse_value(value)
    return out


def resolve_options(owner: str, given: Mapping[str, Any], defaults: Mapping[str, Any]
                    ) -> dict[str, Any]:
    """``defaults`` updated with ``given``; an unknown key is a :class:`UsageError`."""
    for key in given:
        if key not in defaults:
            close = difflib.get_close_matches(key, list(defaults), n=2)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            known = ", ".join(sorted(defaults)) or "(none)"
            raise UsageError(f"{owner} has no option '{key}'.{hint} Its options: {known}")
    return {**defaults, **given}
