"""Declarations of ART evasion attacks as harness plugins, importable without torch or ART.

:class:`ArtEvasion` says what one ART evasion attack is (name, ART class, threat model,
options, budget, roles) and turns it into the :class:`~harness.contracts.specs.AttackSpec` a plugin
registers. Registering it imports nothing heavy; ``build`` imports the torch-side glue
(:mod:`harness.art.bridge`, whose :class:`~harness.art.bridge.ArtEvasionAttack` runs it) and
ART only when an attack is built.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.contracts.options import Option, ResolvedOptions, options, unknown_option_message
from harness.contracts.specs import AttackSpec, Norm, ThreatModel
from harness.util.errors import UsageError

if TYPE_CHECKING:
    from harness.art.bridge import ArtEvasionAttack


@dataclass(frozen=True, kw_only=True)
class ArtEvasion:
    """A declaration of one ART evasion attack as a harness plugin.

    ``eps_args(eps)`` maps the harness budget to the ART constructor's arguments (bounded
    attacks only). ``options`` declares the ART constructor arguments the harness sets, with
    its defaults (iterations, queries) and bounds; any other argument of the ART class is
    accepted too and checked against its signature when the attack is built.
    ``own_options`` are options the harness consumes itself (``estimator_args`` reads them;
    they are not ART arguments). ``targeted`` attacks aim every image at class (y + 1) mod K;
    ``per_sample`` attacks are called one image at a time (ART accepts only one for them);
    ``probabilities`` attacks see softmax scores instead of logits. ``keeps_state``
    attacks carry what they found on one batch over to the next (ART's
    SpatialTransformation keeps the first batch's best transformation), so each batch gets a
    new ART attack object; the others' object serves every batch of a cell.
    ``estimator_args(classifier, eps, own)`` builds arguments that need the wrapped
    classifier (AutoAttack's list of attacks) from the resolved ``own_options``.
    ``smoke_options`` are the tiny budgets of the contract tests; ``roles`` the
    :data:`harness.contracts.roles.ATTACK_ROLES` the attack plays.
    """

    name: str
    art_name: str
    description: str
    threat_model: ThreatModel
    norm: Norm
    needs: frozenset[str]
    survey_table: str
    bounded: bool = False
    eps_args: Callable[[float], dict[str, Any]] | None = None
    options: tuple[Option, ...] = ()
    own_options: tuple[Option, ...] = ()
    smoke_options: Mapping[str, Any] = field(default_factory=dict)
    roles: frozenset[str] = frozenset()
    budget_images: int | None = None
    targeted: bool = False
    per_sample: bool = False
    probabilities: bool = False
    keeps_state: bool = False
    estimator_args: Callable[[Any, float | None, ResolvedOptions], dict[str, Any]] | None = None
    limits: str = ""

    def spec(self) -> AttackSpec:
        """The :class:`AttackSpec` the plugin registers: its declared options accept other
        ART constructor arguments too (``passthrough``)."""
        return AttackSpec(
            name=self.name, description=self.description, build=self.build,
            threat_model=self.threat_model, norm=self.norm, needs=self.needs,
            bounded=self.bounded, targeted=self.targeted, budget_images=self.budget_images,
            survey_table=self.survey_table, roles=self.roles, limits=self.limits,
            options=options(*self.options, *self.own_options, passthrough=True),
            smoke_options=self.smoke_options, config={"art_class": self.art_name},
        )

    def build(self, resolved: Mapping[str, Any]) -> ArtEvasionAttack:
        """The attack object for the resolved options: the harness's own options apart, every
        key must be an argument of the ART class's constructor (UsageError otherwise)."""
        from harness.art.bridge import ArtEvasionAttack, art_class

        cls = art_class(self.art_name)
        own_names = {o.name for o in self.own_options}
        accepted = set(inspect.signature(cls).parameters) - {"estimator", "classifier"}
        for key in resolved:
            if key not in accepted and key not in own_names:
                raise UsageError(unknown_option_message(
                    f"attack {self.name} ({self.art_name})", key,
                    sorted(accepted | own_names)))
        kwargs = {k: v for k, v in resolved.items() if k not in own_names}
        own = ResolvedOptions({k: v for k, v in resolved.items() if k in own_names},
                              owner=f"attack {self.name}")
        if "verbose" in accepted:
            kwargs.setdefault("verbose", False)
        return ArtEvasionAttack(self, cls, kwargs, own)
