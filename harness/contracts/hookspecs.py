"""The hook specifications of harness: one registration hook per plugin kind (datasets, models,
attacks, defenses, reports), nothing else."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from harness.contracts.specs import AttackSpec, DatasetSpec, DefenseSpec, ModelSpec, ReportSpec

hookspec = pluggy.HookspecMarker("harness")
hookimpl = pluggy.HookimplMarker("harness")


@hookspec
def harness_register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register datasets.

    Called once per plugin when the plugin manager is built, before any command runs.

    :param register: call ``register(spec)`` with a :class:`harness.contracts.specs.DatasetSpec`
    for each
        dataset the plugin provides. The callback is bound to the calling plugin, so the spec is
        recorded as belonging to it.
    :return: nothing; the return value is ignored. Must not import heavy modules, read data or
        touch the network: the spec's ``load`` factory does that when a run needs it.
    """


@hookspec
def harness_register_models(register: Callable[[ModelSpec], None]) -> None:
    """Register model architectures.

    Called once per plugin when the plugin manager is built.

    :param register: call ``register(spec)`` with a :class:`harness.contracts.specs.ModelSpec` per
    model.
    :return: nothing. Building the network happens in the spec's ``build`` factory.
    """


@hookspec
def harness_register_attacks(register: Callable[[AttackSpec], None]) -> None:
    """Register attacks.

    Called once per plugin when the plugin manager is built.

    :param register: call ``register(spec)`` with a :class:`harness.contracts.specs.AttackSpec`
    per attack.
    :return: nothing. The spec's ``build`` factory creates the attack object when it is needed.
    """


@hookspec
def harness_register_defenses(register: Callable[[DefenseSpec], None]) -> None:
    """Register defenses.

    Called once per plugin when the plugin manager is built.

    :param register: call ``register(spec)`` with a :class:`harness.contracts.specs.DefenseSpec`
    per defense.
    :return: nothing. The spec's ``build`` factory creates the defense object when it is needed.
    """


@hookspec
def harness_register_reports(register: Callable[[ReportSpec], None]) -> None:
    """Register reports.

    Called once per plugin when the plugin manager is built.

    :param register: call ``register(spec)`` with a :class:`harness.contracts.specs.ReportSpec`
    per report:
        figures a leaderboard page embeds, and/or a text of its own (``harness report NAME``).
    :return: nothing. The spec's functions read result records only; they must not depend on
        the clock or the machine, so a page rebuilds byte for byte from its results.
    """
