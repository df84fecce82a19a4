"""Declared plugin options: a typed schema per spec, and ``NAME.OPTION=VALUE`` parsing.

Each spec declares its options once (:class:`OptionSchema` of :class:`Option`): name, type,
default, bounds, help. The core parses ``--attack-opt pgd.steps=20`` into the schema before
any work (unknown key with "Did you mean", wrong type, out of range: a :class:`UsageError`),
hands the resolved options (:class:`ResolvedOptions`, read as attributes: ``o.steps``) to the
spec's ``build``, and puts the defaults into the cache key, so changing a default re-runs what
it affects. ``harness list attacks --options`` shows them. :func:`count`, :func:`positive`
and :func:`fraction` declare the common bounded numbers in one line. A registered spec's
``build`` refuses options that were not resolved (:class:`CheckedBuild`), naming
``spec.resolve_options(given)`` as the fix.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

from harness.util.errors import OptionsNotResolvedError, UsageError, quoted

OptionType = Literal["int", "float", "bool", "str", "int-list", "float-list", "json"]

_TYPE_WORDS: dict[str, str] = {
    "int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
    "int-list": "a list of integers, e.g. [32,64]", "float-list": "a list of numbers",
    "json": "a JSON value",
}
# What other languages and schemas call the types, for "Did you mean".
_TYPE_SYNONYMS: dict[str, str] = {
    "integer": "int", "number": "float", "double": "float", "real": "float",
    "boolean": "bool", "string": "str", "text": "str", "list": "float-list",
    "int_list": "int-list", "float_list": "float-list", "dict": "json", "object": "json",
}


def type_problem(kind: object) -> str | None:
    """Why ``kind`` is not an :data:`OptionType` (with "Did you mean"), or None."""
    if isinstance(kind, str) and kind in _TYPE_WORDS:
        return None
    close: list[str] = []
    if isinstance(kind, str):
        close = ([_TYPE_SYNONYMS[kind.lower()]] if kind.lower() in _TYPE_SYNONYMS else
                 difflib.get_close_matches(kind.lower(), list(_TYPE_WORDS), n=2, cutoff=0.6))
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return f"type {kind!r} is not one of {', '.join(_TYPE_WORDS)}.{hint}"


@dataclass(frozen=True, kw_only=True)
class Option:
    """One declared option.

    ``type`` is one of :data:`OptionType`; ``nullable`` allows ``null`` (the plugin then picks
    a value at run time; say so in ``help``). ``dataset_eps`` (a nullable float): ``null``
    stands for the dataset's eps, which the harness puts in before ``build`` and before any
    cache key is computed, so the plugin always receives a number and the key shows it.
    ``min``/``max`` bound a number (or every item of a list) inclusively; ``min_exclusive``
    makes ``min`` strict. ``choices`` limits a string. ``per_dataset`` gives the default on
    named datasets (``(("digits", 3), ("mnist", 5))``): an attack's budget that breaks an
    undefended model on 8x8 digits is not the one that does on 28x28 MNIST. The planner puts
    it in, when the option was not given, before ``build`` and before any cache key is
    computed (the key shows the value used).
    """

    name: str
    type: OptionType
    default: Any
    help: str = ""
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    choices: tuple[str, ...] | None = None
    dataset_eps: bool = False
    per_dataset: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        wrong_type = type_problem(self.type)
        if wrong_type:
            raise ValueError(f"option '{self.name}': {wrong_type}")
        if self.default is not None or not self.nullable:
            problem = self.problem(self.default)
            if problem:
                raise ValueError(f"option '{self.name}': its default {self.default!r} "
                                 f"{problem}")
        for dataset, value in self.per_dataset:
            problem = self.problem(value)
            if problem:
                raise ValueError(f"option '{self.name}': its default on {dataset!r}, "
                                 f"{value!r}, {problem}")
        if self.dataset_eps and not (self.type == "float" and self.nullable
                                     and self.default is None):
            raise ValueError(f"option '{self.name}': dataset_eps=True needs type='float', "
                             "nullable=True and default=None (null stands for the dataset's "
                             "eps)")

    def describe(self) -> str:
        """``'an integer >= 1 (or null)'``: what a value must be, for messages and listings."""
        text = _TYPE_WORDS[self.type]
        if self.choices:
            text = "one of " + ", ".join(self.choices)
        lo = (">" if self.min_exclusive else ">=") if self.min is not None else None
        if self.min is not None and self.max is not None:
            text += f" in {'(' if self.min_exclusive else '['}{self.min:g}, {self.max:g}]"
        elif lo is not None:
            text += f" {lo} {self.min:g}"
        elif self.max is not None:
            text += f" <= {self.max:g}"
        return text + (" (or null)" if self.nullable else "")

    def _number_problem(self, value: Any, integer: bool) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "is not " + ("an integer" if integer else "a number")
        if integer and not isinstance(value, int):
            return "is not an integer"
        if not math.isfinite(value):
            return "is not a finite number"
        if self.min is not None and (value < self.min or (self.min_exclusive
                                                          and value == self.min)):
            return "is out of range"
        if self.max is not None and value > self.max:
            return "is out of range"
        return None

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not valid for this option, or None."""
        if value is None:
            return None if self.nullable else "may not be null"
        if self.type in ("int", "float"):
            return self._number_problem(value, self.type == "int")
        if self.type == "bool":
            return None if isinstance(value, bool) else "is not true or false"
        if self.type == "str":
            if not isinstance(value, str):
                return "is not a string"
            if self.choices and value not in self.choices:
                return "is not one of the choices"
            return None
        if self.type in ("int-list", "float-list"):
            if not isinstance(value, list | tuple) or not value:
                return "is not a non-empty list"
            for item in value:
                if self._number_problem(item, self.type == "int-list"):
                    return f"has an item {item!r} that is not valid"
            return None
        return None

    def normalize(self, value: Any) -> Any:
        """The value as stored: ints given for a float option become floats, lists stay."""
        if value is None:
            return None
        if self.type == "float":
            return float(value)
        if self.type in ("int-list", "float-list"):
            cast = float if self.type == "float-list" else int
            return [cast(v) for v in value]
        return value


class ResolvedOptions(dict[str, Any]):
    """The options a spec's ``build`` receives: every declared option, the values given over
    the declared defaults, each checked (what :meth:`OptionSchema.resolve` and
    ``spec.resolve_options(given)`` return). Read them as attributes, ``resolved.steps``
    (``resolved["steps"]`` works too, as in 0.1; a name that shadows a ``dict`` method, such
    as ``items``, only so). Read-only; to change a value, copy it
    (``{**resolved, "steps": 3}``). ``owner`` (``'attack pgd'``) names the spec in errors."""

    __slots__ = ("_owner",)
    _owner: str

    def __init__(self, values: Mapping[str, Any] | Iterable[tuple[str, Any]] = (), /, *,
                 owner: str = ""):
        super().__init__(values)
        object.__setattr__(self, "_owner", owner)

    def __getattr__(self, name: str) -> Any:
        """The resolved value of the option ``name``; :class:`AttributeError` naming the
        declared options when there is no such option."""
        try:
            return self[name]
        except KeyError:
            pass
        if name.startswith("__") or name == "_owner":
            raise AttributeError(name)
        raise AttributeError(unknown_option_message(self._owner, name, list(self))
                             + f"; declare it (Option(name={name!r}, ...)) to read it")

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("resolved options are read-only; copy them to change a value: "
                        "{**resolved, 'name': value}")

    __setitem__ = __delitem__ = pop = popitem = clear = update = setdefault = _refuse
    __ior__ = __setattr__ = __delattr__ = _refuse

    def copy(self) -> dict[str, Any]:
        """A plain, writable copy."""
        return dict(self)

    def __reduce__(self) -> tuple[type[ResolvedOptions], tuple[dict[str, Any]], dict[str, str]]:
        return (ResolvedOptions, (dict(self),), {"owner": self._owner})

    def __setstate__(self, state: Mapping[str, str]) -> None:
        object.__setattr__(self, "_owner", state.get("owner", ""))


@dataclass(frozen=True)
class OptionSchema:
    """The options of one spec. ``passthrough`` accepts undeclared keys too and leaves them to
    the spec's ``build`` to check (a wrapper of a library class whose constructor takes more
    arguments than the harness declares; ``build`` runs before any work)."""

    options: tuple[Option, ...] = ()
    passthrough: bool = False
    _by_name: dict[str, Option] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name = {o.name: o for o in self.options}
        if len(by_name) != len(self.options):
            raise ValueError("two options share a name")
        object.__setattr__(self, "_by_name", by_name)

    def __iter__(self):
        return iter(self.options)

    def __len__(self) -> int:
        return len(self.options)

    def names(self) -> list[str]:
        """The declared option names, in declaration order."""
        return [o.name for o in self.options]

    def with_dataset_eps(self, resolved: ResolvedOptions, eps: float
                         ) -> tuple[ResolvedOptions, dict[str, float]]:
        """``resolved`` with every ``dataset_eps`` option left null set to ``eps``, and the
        values so set (by name; empty when none was)."""
        filled = {o.name: float(eps) for o in self.options
                  if o.dataset_eps and resolved.get(o.name) is None}
        if not filled:
            return resolved, {}
        return ResolvedOptions({**resolved, **filled}, owner=resolved._owner), filled

    def with_dataset_defaults(self, resolved: ResolvedOptions, given: Mapping[str, Any],
                              dataset: str) -> tuple[ResolvedOptions, dict[str, Any]]:
        """``resolved`` with every option that has a default for ``dataset``
        (:attr:`Option.per_dataset`) and was not ``given`` set to it, and the values so set
        (by name; empty when none was)."""
        filled = {o.name: o.normalize(dict(o.per_dataset)[dataset]) for o in self.options
                  if o.name not in given and dataset in dict(o.per_dataset)}
        if not filled:
            return resolved, {}
        return ResolvedOptions({**resolved, **filled}, owner=resolved._owner), filled

    def defaults(self) -> dict[str, Any]:
        """Every declared option at its default."""
        return {o.name: o.normalize(o.default) for o in self.options}

    @property
    def undeclared(self) -> bool:
        """Whether this is the schema of a spec that declares no options (every option is
        passed to ``build`` unchecked: :data:`harness.contracts.specs.UNDECLARED`)."""
        return not self.options and self.passthrough

    def resolve(self, owner: str, given: Mapping[str, Any]) -> ResolvedOptions:
        """The defaults updated with ``given``, each value checked; ``owner`` names the spec
        in errors (``'attack pgd'``). Raises :class:`UsageError`."""
        out = self.defaults()
        for key, value in given.items():
            option = self._by_name.get(key)
            if option is None:
                if self.passthrough:
                    out[key] = value
                    continue
                raise UsageError(unknown_option_message(owner, key, self.names()))
            problem = option.problem(value)
            if problem:
                raise UsageError(f"{owner}: option '{key}' must be {option.describe()}; "
                                 f"got {_shown(value)}, which {problem}")
            out[key] = option.normalize(value)
        return ResolvedOptions(out, owner=owner)

    def ensure_resolved(self, owner: str, given: Any) -> Any:
        """What a spec's ``build`` is handed for ``given``: resolved options as they are; a
        plain mapping that holds every declared option, checked and resolved; a plain mapping
        without some declared option refused (:class:`OptionsNotResolvedError`, saying to call
        ``spec.resolve_options(given)``). Anything else is passed on unchanged."""
        if isinstance(given, ResolvedOptions) or not isinstance(given, Mapping):
            return given
        missing = [name for name in self.names() if name not in given]
        if missing:
            raise OptionsNotResolvedError(
                f"{owner}: options not resolved: build got {_shown(dict(given))}, without "
                f"the declared {', '.join(repr(m) for m in missing)}. Call "
                "spec.resolve_options(given) and pass what it returns to spec.build: it "
                "checks the given options and fills in the declared defaults")
        return self.resolve(owner, given)


class CheckedBuild:
    """A spec's ``build`` as the registry keeps it: the options argument (the last
    positional one) goes through :meth:`OptionSchema.ensure_resolved` first, so a caller that
    passes raw options gets told to resolve them instead of a bare ``KeyError`` from inside
    the plugin. Compares and hashes as the function it wraps."""

    def __init__(self, build: Callable[..., Any], owner: str, schema: OptionSchema):
        self.__wrapped__ = build
        self.owner, self.schema = owner, schema

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped ``build`` with its options argument resolved (or refused)."""
        if args:
            args = (*args[:-1], self.schema.ensure_resolved(self.owner, args[-1]))
        return self.__wrapped__(*args, **kwargs)

    def __eq__(self, other: object) -> bool:
        inner = other.__wrapped__ if isinstance(other, CheckedBuild) else other
        return bool(self.__wrapped__ == inner)

    def __hash__(self) -> int:
        return hash(self.__wrapped__)

    def __repr__(self) -> str:
        return f"<checked {self.__wrapped__!r}>"


def options(*declared: Option, passthrough: bool = False) -> OptionSchema:
    """``options(Option(...), ...)``: the schema a spec declares."""
    return OptionSchema(tuple(declared), passthrough)


def count(name: str, default: int, help: str, low: int = 1, high: int | None = None
          ) -> Option:
    """An integer option >= ``low`` (and <= ``high``): ``count("steps", 10, "iterations")``."""
    return Option(name=name, type="int", default=default, help=help, min=low, max=high)


def positive(name: str, default: float, help: str, high: float | None = None) -> Option:
    """A number option > 0 (and <= ``high``): ``positive("lr", 0.01, "step size")``."""
    return Option(name=name, type="float", default=default, help=help, min=0,
                  min_exclusive=True, max=high)


def fraction(name: str, default: float, help: str) -> Option:
    """A number option in [0, 1]: ``fraction("rate", 0.1, "share of the training set")``."""
    return Option(name=name, type="float", default=default, help=help, min=0, max=1)


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def unknown_option_message(owner: str, key: str, known: Sequence[str]) -> str:
    """``attack pgd has no option 'stepz'. Did you mean: steps? Its options: ...`` (``there is
    no option ...``, ``The options: ...`` when ``owner`` is empty)."""
    close = difflib.get_close_matches(key, list(known), n=2)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    listed = ", ".join(sorted(known)) or "(none)"
    if not owner:
        return f"there is no option {_shown(key)}.{hint} The options: {listed}"
    return f"{owner} has no option {_shown(key)}.{hint} Its options: {listed}"


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
            raise UsageError(f"{flag} {quoted(item)}: expected NAME.OPTION=VALUE, e.g. {flag} "
                             "pgd.steps=20")
        out.setdefault(name.strip(), {})[option.strip()] = parse_value(value)
    return out

