"""Builds the plugin manager: loads every ``harness`` entry point and collects its specs.

This is the only module that calls hooks. Every failure (import error, invalid hook, duplicate
name, an exception inside a registration hook) becomes a :class:`PluginError` naming the plugin,
its distribution and its version.
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from importlib.metadata import EntryPoint, entry_points

import pluggy

from harness.contracts import hookspecs
from harness.contracts.specs import PluginInfo
from harness.planning.registry import PluginRecord, Registry
from harness.util.errors import PluginError
from harness.util.version import DISTRIBUTION

ENTRY_POINT_GROUP = "harness"

#: In-process plugins added for the duration of one test by ``harness.testing``.
TEST_PLUGINS: list[tuple[PluginInfo, object]] = []
DISABLE_ENV = "HARNESS_DISABLE_PLUGINS"

HOOKS: dict[str, str] = {
    "dataset": "harness_register_datasets",
    "model": "harness_register_models",
    "attack": "harness_register_attacks",
    "defense": "harness_register_defenses",
    "report": "harness_register_reports",
}


def entry_point_info(ep: EntryPoint) -> PluginInfo:
    """The :class:`PluginInfo` of an installed entry point."""
    dist = ep.dist
    return PluginInfo(
        name=ep.name,
        distribution=dist.name if dist else "unknown",
        version=dist.version if dist else "unknown",
        entry_point=f"{ep.name} = {ep.value}",
    )


def disabled_from_env() -> set[str]:
    """Plugin names listed in ``HARNESS_DISABLE_PLUGINS`` (comma-separated; ``NAME`` or
    ``DIST:NAME``, see :func:`load_registry`)."""
    raw = os.environ.get(DISABLE_ENV, "")
    return {name.strip() for name in raw.split(",") if name.strip()}


def _normal_distribution(name: str) -> str:
    """A distribution name as packaging compares them: ``Harness_Foo`` is ``harness-foo``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def qualified_name(info: PluginInfo) -> str:
    """``DIST:NAME``: the plugin's entry-point name qualified by its distribution."""
    return f"{info.distribution}:{info.name}"


def is_disabled(info: PluginInfo, disabled: Iterable[str]) -> bool:
    """Whether ``disabled`` names this plugin: by its bare name (every plugin of that name)
    or as ``DIST:NAME`` (only that distribution's; the distribution compared as packaging
    does, so ``Harness_Foo:fgsm`` is ``harness-foo:fgsm``)."""
    mine = _normal_distribution(info.distribution)
    for name in disabled:
        dist, colon, bare = name.partition(":")
        if name == info.name or (colon and bare == info.name
                                  and _normal_distribution(dist) == mine):
            return True
    return False


def unknown_disabled(names: Iterable[str],
                     entry_point_source: Callable[[], Iterable[EntryPoint]] | None = None
                     ) -> list[str]:
    """Messages for names in ``names`` that match no installed ``harness`` entry point (the
    ones of ``entry_point_source``, like :func:`load_registry`): a bare ``NAME`` is looked
    up among the entry-point names, a ``DIST:NAME`` among the qualified ones."""
    from harness.planning.registry import unknown_name_message

    source = entry_point_source or (lambda: entry_points(group=ENTRY_POINT_GROUP))
    infos = [entry_point_info(ep) for ep in source()] + [info for info, _ in TEST_PLUGINS]
    problems = []
    for name in names:
        if ":" in name:
            if not any(is_disabled(info, [name]) for info in infos):
                problems.append(unknown_name_message(
                    "plugin", name, {qualified_name(info) for info in infos}))
        elif name not in {info.name for info in infos}:
            problems.append(unknown_name_message("plugin", name,
                                                 {info.name for info in infos}))
    return problems


def _register_plugin(pm: pluggy.PluginManager, obj: object, info: PluginInfo) -> None:
    try:
        pm.register(obj, name=info.name)
        pm.check_pending()
    except Exception as exc:  # pluggy raises PluginValidationError and ValueError
        if pm.is_registered(obj):
            pm.unregister(obj)
        raise PluginError(f"{info.label()}: {exc}") from exc


def _collect_specs(pm: pluggy.PluginManager, infos: dict[str, PluginInfo], registry: Registry,
                   strict: bool) -> None:
    for kind, hook_name in HOOKS.items():
        caller = getattr(pm.hook, hook_name)
        for impl in caller.get_hookimpls():  # registration order: first loaded keeps a name
            info = infos[impl.plugin_name]

            def register(spec: object, _kind: str = kind, _info: PluginInfo = info) -> None:
                registry.add(_kind, _with_owner(spec, _info), _info)

            kwargs = {"register": register}
            try:
                impl.function(*[kwargs[arg] for arg in impl.argnames])
            except PluginError as exc:
                _fail(registry, str(exc), strict, exc)
            except Exception as exc:
                _fail(registry, f"{info.label()}: {hook_name} failed: "
                                f"{type(exc).__name__}: {exc}", strict, exc)


def _with_owner(spec: object, info: PluginInfo) -> object:
    if dataclasses.is_dataclass(spec) and not isinstance(spec, type) and hasattr(spec, "plugin"):
        return dataclasses.replace(spec, plugin=info)
    return spec


def _fail(registry: Registry, message: str, strict: bool,
          cause: BaseException | None = None) -> None:
    if strict:
        raise PluginError(message) from cause
    registry.load_errors.append(message)
    warnings.warn(message, stacklevel=2)


def _load_order(ep: EntryPoint) -> tuple[bool, str, str]:
    """The built-ins first (they keep their names), then by distribution and name."""
    dist = ep.dist.name if ep.dist else ""
    return (dist != DISTRIBUTION, dist, ep.name)


def _load_entry_points(pm: pluggy.PluginManager, registry: Registry, eps: list[EntryPoint],
                       strict: bool) -> dict[str, PluginInfo]:
    """Import and register each entry point; a failure names the plugin (and, unless
    ``strict``, is recorded and skipped)."""
    infos: dict[str, PluginInfo] = {}
    for ep in sorted(eps, key=_load_order):
        info = entry_point_info(ep)
        if ep.name in infos:
            _fail(registry, f"{info.label()}: another installed plugin is also named "
                            f"'{ep.name}' ({infos[ep.name].label()}); to disable only this one: "
                            f"--disable-plugin {qualified_name(info)}", strict)
            continue
        try:
            obj = ep.load()
        except Exception as exc:
            _fail(registry, f"{info.label()}: failed to import: {type(exc).__name__}: {exc}",
                  strict, exc)
            continue
        try:
            _register_plugin(pm, obj, info)
        except PluginError as exc:
            _fail(registry, str(exc), strict, exc.__cause__)
            continue
        infos[info.name] = info
    return infos


def load_registry(
    *,
    strict: bool = True,
    disabled: Iterable[str] = (),
    extra_plugins: Sequence[tuple[PluginInfo, object]] = (),
    use_entry_points: bool = True,
    entry_point_source: Callable[[], Iterable[EntryPoint]] | None = None,
) -> Registry:
    """Load every ``harness`` entry point (minus ``disabled``) plus ``extra_plugins``.

    ``strict`` raises on the first broken plugin (``harness bench``: a missing plugin would
    silently corrupt a leaderboard); otherwise the error is recorded in ``load_errors``, warned
    about, and loading goes on (listing commands). ``extra_plugins`` and the in-process
    plugins of ``harness.testing`` are registered after the entry points; an object already
    loaded through its entry point (an installed plugin's module) is kept under that entry
    point and not registered twice.

    A name in ``disabled`` (or ``HARNESS_DISABLE_PLUGINS``) is either a bare entry-point
    ``NAME``, which disables every plugin of that name, or ``DIST:NAME`` (e.g.
    ``harness-foo:fgsm``), which disables only the entry point ``NAME`` of the distribution
    ``DIST``: the way to keep a built-in when a third-party distribution's entry point is
    named like it.
    """
    off = set(disabled) | disabled_from_env()
    pm = pluggy.PluginManager("harness")
    pm.add_hookspecs(hookspecs)
    registry = Registry()
    eps: Iterable[EntryPoint] = ()
    if use_entry_points:
        eps = (entry_point_source or (lambda: entry_points(group=ENTRY_POINT_GROUP)))()
    infos = _load_entry_points(
        pm, registry, [ep for ep in eps if not is_disabled(entry_point_info(ep), off)], strict)
    for info, obj in [*extra_plugins, *TEST_PLUGINS]:
        if is_disabled(info, off):
            continue
        if pm.is_registered(obj):  # already loaded through its entry point: keep that one
            continue
        _register_plugin(pm, obj, info)
        infos[info.name] = info

    for info in infos.values():
        registry.plugins.setdefault(info.name, PluginRecord(info))
    _collect_specs(pm, infos, registry, strict)
    return registry
