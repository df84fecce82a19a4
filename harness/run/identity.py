"""A record's identity and the configuration behind it, built once: from a planned cell
(:func:`cell_identity`, :func:`cell_config`) or from a pairing the plan left out
(:func:`skipped_identity`). Every record of a run is assembled from these, so a cell
evaluated, failed or left out is named the same way everywhere."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.contracts.provenance import distribution_of

if TYPE_CHECKING:
    from harness.contracts.specs import AttackSpec, DefenseSpec
    from harness.planning.cells import Cell, Skipped


def _specs(attack: AttackSpec, defense: DefenseSpec) -> dict[str, Any]:
    """What the attack and defense declare of the cell's identity."""
    return dict(defense=defense.name, attack=attack.name, category=attack.category,
                defense_stage=defense.stage, threat_model=attack.threat_model,
                norm=attack.norm, attack_roles=tuple(sorted(attack.roles)),
                defense_roles=tuple(sorted(defense.roles)))


def cell_identity(cell: Cell) -> dict[str, Any]:
    """The identity fields of ``cell``'s record (the run id is the store's: see
    :meth:`harness.run.runner.Runner.run`)."""
    job = cell.job
    return dict(cell_key=cell.key, train_key=job.key, run_id="", dataset=job.dataset.name,
                model=job.model_name, eps=cell.eps, adaptive=cell.adaptive,
                **_specs(cell.attack, cell.defense))


def skipped_identity(item: Skipped, run_id: str) -> dict[str, Any]:
    """The identity fields of the record of a pairing the plan left out."""
    return dict(cell_key=item.key, train_key="", run_id=run_id, dataset=item.dataset,
                model=item.model, eps=None, **_specs(item.attack, item.defense))


def plugins_config(attack: AttackSpec, defense: DefenseSpec) -> dict[str, Any]:
    """The distributions that provided the attack and the defense."""
    return {"attack_plugin": distribution_of(attack), "defense_plugin": distribution_of(defense)}


def cell_config(cell: Cell, seed: int, attack_batch_size: int) -> dict[str, Any]:
    """What shaped ``cell``'s numbers: the training key's fields, the attack's and defense's
    options, the test subset, the seed and the attack batch (``check``: an automatic cell)."""
    config: dict[str, Any] = {
        "training": cell.job.key_fields, "attack_options": cell.attack_options,
        "attack_config": cell.attack.key_config(), "defense_options": cell.defense_options,
        "n_test": cell.n_test, "seed": seed, "attack_batch_size": attack_batch_size,
        **plugins_config(cell.attack, cell.defense)}
    if cell.check:
        config["check"] = True
    return config
