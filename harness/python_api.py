"""``harness.evaluate``: the Python door to the same run ``harness bench`` makes.

It takes a trained ``nn.Module`` (or a model file, or any ``--model`` name), builds the same
:class:`harness.planning.plan.BenchConfig` the command line builds, and runs it through the same
runner, store and cache keys, so the API and the command line agree cell for cell. The result
is an :class:`Evaluation`: the typed :class:`harness.contracts.records.ResultSet` with its checks
done,
its summary rows, worst case and flags, and the page and claims it renders.

A module handed over in Python is a supplied model like a file (see
:mod:`harness.planning.supplied`):
evaluated as it is, its identity the SHA-256 of its code and weights. It lives in this process,
so it runs with the serial executor; save it as TorchScript to use worker processes or Ray.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.contracts.records import ResultSet
from harness.planning.supplied import ModelContractError
from harness.util.errors import UsageError

if TYPE_CHECKING:
    import torch

    from harness.contracts.outcomes import WorstCase
    from harness.planning.registry import Registry
    from harness.report.checks import Flag
    from harness.report.headline import HeadlineRow
    from harness.report.reporting import Report

#: ``store=DEFAULT_STORE``: the command line's results database, ``$HARNESS_HOME/results.sqlite``.
DEFAULT_STORE = "default"
#: The name of the spec a module handed over in Python is registered under.
PYTHON_MODEL = "python"

__all__ = ["DEFAULT_STORE", "Evaluation", "EvaluationError", "evaluate"]

# One exception type for every refused model or contract, with the command line's message.
EvaluationError = ModelContractError


@dataclass
class Evaluation(ResultSet):
    """The records of an evaluation with their checks done: what ``harness bench`` prints.

    ``rows`` are the summary rows (one per model and defense at the dataset's eps), ``worst``
    the per-image worst cases, ``flags`` the checks' findings; :meth:`to_markdown` renders the
    leaderboard page, :meth:`summary` the terminal summary, :meth:`to_json` the results file,
    :meth:`claims` the claims.
    """

    report: Report | None = field(default=None, repr=False)

    @classmethod
    def of(cls, results: ResultSet, registry: Registry) -> Evaluation:
        """``results`` with the checks run once."""
        from harness.report.reporting import Report

        report = Report.of(results, registry)
        return cls(list(results.records), dict(results.runs), report=report)

    def _report(self) -> Report:
        assert self.report is not None, "an Evaluation is made by Evaluation.of"
        return self.report

    @property
    def flags(self) -> list[Flag]:
        """The checks' findings (code, cell, message)."""
        return list(self._report().flags)

    @property
    def rows(self) -> list[HeadlineRow]:
        """The summary rows: clean, the reference attacks and the worst case per model and
        defense at the dataset's eps; ranked rows first (``rank``; ``not_ranked`` says why
        a row is not), best worst case first."""
        from harness.report.headline import headline_rows

        return headline_rows(self.records, self._report().flags_by_cell)

    @property
    def worst(self) -> list[WorstCase]:
        """The per-image worst case per dataset, model, defense and eps, over the attacks
        that count (an attack the checks found too weak to measure robustness, flag W, does
        not)."""
        from harness.contracts.outcomes import worst_cases
        from harness.report.headline import counts

        flags = self._report().flags_by_cell
        return worst_cases(r for r in self.records if counts(r, flags))

    def to_markdown(self) -> str:
        """The leaderboard page of these records (what ``harness bench --out`` writes)."""
        return self._report().markdown()

    def to_json(self) -> str:
        """The results file of these records (what ``harness bench --json`` writes)."""
        from harness.results.results_file import results_json

        return results_json(self)

    def summary(self, width: int = 100) -> str:
        """The terminal summary."""
        return self._report().summary(width)

    def claims(self, folder: Path | str | None = None) -> dict[tuple[str, str, str], dict]:
        """The claim of every model and defense (RobustBench's ``model_info`` shape, checked
        against a reported number); with ``folder``, also written there as ``harness
        leaderboard --claims`` writes them."""
        from harness.report.claims import claims, write_claims

        flags = self._report().flags_by_cell
        if folder is not None:
            write_claims(self, flags, Path(folder))
        return claims(self, flags)


def evaluate(model: torch.nn.Module | str | Path, *, dataset: str | None = None,
             attacks: Sequence[str] | None = None, eps: Sequence[float] | float | None = None,
             defenses: Sequence[str] = (), n_test: int | None = None, label: str | None = None,
             mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
             reported: float | None = None, attack_options: Mapping[str, Mapping] | None = None,
             defense_options: Mapping[str, Mapping] | None = None,
             model_options: Mapping[str, Any] | None = None, data_root: Path | str | None = None,
             device: str = "auto", seed: int = 0, checks: bool = True,
             executor: str = "serial", workers: int | None = None,
             store: Path | str | None = DEFAULT_STORE, home: Path | str | None = None,
             progress: bool = True) -> Evaluation:
    """Evaluate ``model`` as it is on ``dataset`` against ``attacks`` (at ``eps``, default the
    dataset's), with the input transformations ``defenses`` in front of it; return the
    :class:`Evaluation`. ``dataset`` defaults to the main command's (the offline digits);
    ``attacks`` to the reference single-step and iterative attacks (FGSM and PGD among the
    built-ins).

    ``model``: a trained ``nn.Module`` taking images in [0, 1] of the dataset's shape and
    returning logits; a path (``.pt``/``.pth`` TorchScript, ``.pt2`` torch.export, ``.onnx``);
    or any ``harness bench --model`` name (``paper-cnn@w.safetensors``, ``torchscript:m.pt``,
    or a registered architecture, which is then trained as the command line trains it).
    ``mean``/``std``: the normalization the model expects, put inside it. ``reported``: the
    robust accuracy its authors claim (a fraction), checked by :meth:`Evaluation.claims`.
    ``store``: the results database (default: the command line's; None: a temporary one, so
    nothing is kept). ``home``: ``HARNESS_HOME`` (model cache, stored adversarial examples).
    Bad models and contracts raise :class:`EvaluationError` (a ``UsageError``) with the
    command line's message, before any work; nothing is stored then.
    """
    from harness.planning.loading import load_registry
    from harness.util.files import harness_home

    registry = load_registry(strict=True)
    name = _model_name(model, registry)
    options = {k: v for k, v in {"label": label, "mean": _floats(mean), "std": _floats(std),
                                 "reported": reported}.items() if v is not None}
    options.update(model_options or {})
    if isinstance(model, _module_type()) and "label" not in options:
        options["label"] = type(model).__name__
    config = _config(registry, name, options, dataset=dataset, attacks=attacks, eps=eps,
                     defenses=defenses, n_test=n_test, data_root=data_root, device=device,
                     seed=seed, checks=checks, attack_options=attack_options,
                     defense_options=defense_options)
    if executor != "serial" and isinstance(model, _module_type()):
        raise UsageError(f"executor {executor!r} runs in other processes, which a module in "
                         "this process cannot reach: save it (torch.jit.script(model).save("
                         "'m.pt')) and evaluate the file, or use executor='serial'")
    root = Path(home) if home is not None else harness_home()
    with tempfile.TemporaryDirectory(prefix="harness-evaluate-") as scratch:
        db = _store_path(store, root, Path(scratch))
        return _run(config, registry, db, root, executor, workers, progress)


def _module_type() -> type:
    import torch

    return torch.nn.Module


def _floats(values: Sequence[float] | None) -> list[float] | None:
    return None if values is None else [float(v) for v in values]


def _model_name(model: Any, registry: Registry) -> str:
    """The ``--model`` name of ``model``; a module is registered as :data:`PYTHON_MODEL`."""
    import torch

    if isinstance(model, torch.nn.Module):
        _register_module(model, registry)
        return PYTHON_MODEL
    if isinstance(model, Path) or (isinstance(model, str) and Path(model).is_file()):
        path = Path(model)
        kinds = [s.name for s in registry.models.values()
                 if s.supplied and path.suffix in s.suffixes]
        if not kinds:
            known = sorted(f"{x} ({s.name})" for s in registry.models.values() if s.supplied
                           for x in s.suffixes)
            raise ModelContractError(
                f"cannot tell the kind of model file {str(path)!r} from its suffix "
                f"({', '.join(known)}): name it KIND:PATH (harness list models) or, for a state "
                "dict, ARCH@PATH")
        return f"{kinds[0]}:{path}"
    if isinstance(model, str):
        return model
    raise UsageError(f"evaluate() takes an nn.Module, a model file or a model name, not "
                     f"{type(model).__name__}")


def _register_module(module: torch.nn.Module, registry: Registry) -> None:
    """Register ``module`` as the supplied model :data:`PYTHON_MODEL` of ``registry``."""
    from harness.contracts.options import options as no_options
    from harness.contracts.specs import ModelSpec, PluginInfo
    from harness.run.supplied_models import module_sha256

    sha = module_sha256(module)
    copy = _frozen_copy(module)
    registry.add("model", ModelSpec(
        name=PYTHON_MODEL, description=f"{type(module).__name__} handed to harness.evaluate",
        build=lambda model_input, variant, options: _frozen_copy(copy), supplied=True,
        fingerprint=lambda variant, options: sha, options=no_options(),
        offers=frozenset({"gradients", "scores", "labels"})),
        PluginInfo(name="harness.evaluate", distribution="<in-process>", version="0"))


def _frozen_copy(module: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``module`` on the CPU in eval mode (the caller's object is not moved)."""
    import copy

    return copy.deepcopy(module).cpu().eval()


def _config(registry: Registry, name: str, options: dict[str, Any], *, dataset: str | None,
            attacks: Sequence[str] | None, eps: Sequence[float] | float | None,
            defenses: Sequence[str], n_test: int | None, data_root: Path | str | None,
            device: str, seed: int, checks: bool,
            attack_options: Mapping[str, Mapping] | None,
            defense_options: Mapping[str, Mapping] | None) -> Any:
    from harness.planning.plan import BenchConfig, check_config

    if isinstance(attacks, str) or isinstance(defenses, str):
        raise UsageError("attacks and defenses are lists of names (attacks=[NAME, ...]; "
                         "harness list attacks shows them), not one string")
    baseline = tuple(n for n, s in registry.defenses.items() if s.baseline)
    eps_list = None if eps is None else (float(eps),) if isinstance(eps, int | float) \
        else tuple(float(e) for e in eps)
    config = BenchConfig(
        datasets=(dataset,) if dataset is not None else (),
        models=(name,), attacks=tuple(attacks) if attacks is not None
        else reference_attacks(registry),
        defenses=tuple(defenses) or baseline, eps=eps_list, n_test=n_test, seed=seed,
        device=device, data_root=Path(data_root) if data_root is not None else None,
        model_options={name: dict(options)} if options else {},
        attack_options={k: dict(v) for k, v in (attack_options or {}).items()},
        defense_options={k: dict(v) for k, v in (defense_options or {}).items()},
        checks=checks)
    check_config(config)
    return config


def reference_attacks(registry: Registry) -> tuple[str, ...]:
    """The reference single-step and iterative attacks (by role), else the default run's."""
    from harness.contracts import roles
    from harness.planning.plan import default_names

    found = tuple(name for role in (roles.SINGLE_STEP, roles.ITERATIVE)
                  for name, spec in registry.attacks.items()
                  if role in spec.roles and roles.REFERENCE in spec.roles
                  and roles.ENSEMBLE not in spec.roles)
    return tuple(dict.fromkeys(found)) or tuple(default_names("attack", registry))


def _store_path(store: Path | str | None, home: Path, scratch: Path) -> Path:
    if store is None:
        return scratch / "results.sqlite"
    if isinstance(store, str) and store == DEFAULT_STORE:
        return home / "results.sqlite"
    return Path(store)


def _run(config: Any, registry: Registry, db: Path, home: Path, executor: str,
         workers: int | None, progress: bool) -> Evaluation:
    from harness.results.store import ResultStore
    from harness.run.executors import ExecutorOptions, make_executor
    from harness.run.model_cache import ModelCache
    from harness.run.runner import Runner

    home.mkdir(parents=True, exist_ok=True)
    store = ResultStore(db)
    store.check()
    try:
        runner = Runner(config, registry, store, ModelCache(home / "models"),
                        show_progress=progress, argv=["<harness.evaluate>"],
                        executor=make_executor(ExecutorOptions(executor, workers),
                                               config.device))
        outcome = runner.run()
    finally:
        store.close()
    return Evaluation.of(outcome.results, registry)
