"""The model provider: builds a job's model, trains it (or loads it from the cache) once, and
gives attacks the tools to build and train more models of the same architecture.

Training chooses between the model's own ``fit`` (scikit-learn models, undefended) and the
defense's ``train``; finished weights go to the model cache, unfinished ones keep their state
epoch by epoch. :func:`victim_trainer` is the one way to train a fresh victim, shared by the
runner's attack contexts and :func:`harness.testing.tiny_context`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from harness.contracts.categories import not_built
from harness.contracts.context import AttackContext
from harness.contracts.data import ImageData, ModelInput
from harness.contracts.specs import TrainingDefense
from harness.results.metadata import now
from harness.run.model_cache import DamagedEntry
from harness.run.supplied_models import Contract, check_contract, load_supplied, reinitialize
from harness.train.loop import TrainContext, TrainData, TrainReport, TrainSettings, train_supervised
from harness.util.devices import autocast_forward
from harness.util.files import exclusive

if TYPE_CHECKING:
    from harness.planning.plan import Cell, TrainingJob
    from harness.run.model_cache import ModelCache

Fit = Callable[[torch.nn.Module, TrainData, TrainContext], TrainReport]
VictimTrainer = Callable[..., TrainReport]


@dataclass
class TrainedModel:
    """A job's trained model (eval mode) and its training report."""

    model: torch.nn.Module
    info: dict[str, Any]
    cached: bool = False
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def train_values(self) -> dict[str, Any]:
        """The training numbers every record of the job carries."""
        return {"train_seconds": self.info.get("train_seconds"),
                "train_images_per_s": self.info.get("train_images_per_s")}


def victim_trainer(settings: TrainSettings, device: torch.device, dataset_eps: float,
                   num_classes: int, fit: Fit | None = None, *, show_progress: bool = False,
                   label_suffix: str = "") -> VictimTrainer:
    """``train(model, x, y, label)``: train a fresh victim in place on ``(x, y)`` the way the
    undefended model is trained (``settings``, a validation split taken from ``x``, the
    model's own ``fit`` when it has one), leaving it in eval mode."""

    def train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
              label: str = "train") -> TrainReport:
        split = TrainData.from_tensors(x, y, num_classes, settings.val_fraction, settings.seed)
        ctx = TrainContext(settings=settings, device=device, dataset_eps=dataset_eps,
                           label=f"{label}{label_suffix}", show_progress=show_progress)
        report = fit(model, split, ctx) if fit is not None else train_supervised(model, split,
                                                                                 ctx)
        model.eval()
        return report

    return train


class ModelProvider:
    """Builds, trains and caches the models of a plan's training jobs on one device."""

    def __init__(self, cache: ModelCache, device: torch.device, *, show_progress: bool = False,
                 no_cache: bool = False):
        self.cache = cache
        self.device = device
        self.show_progress = show_progress
        self.no_cache = no_cache
        self._members: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._float_view: tuple[ImageData, ImageData] | None = None   # (data, data.floats())
        self._supplied: dict[str, tuple[torch.nn.Module, float]] = {}   # key: (model, seconds)

    @staticmethod
    def model_input(job: TrainingJob, data: ImageData) -> ModelInput:
        """What the model factory sizes itself by."""
        c, h, w = data.image_shape
        return ModelInput(c, h, w, data.num_classes, job.dataset.mean, job.dataset.std)

    def build(self, job: TrainingJob, data: ImageData, seed: int | None = None
              ) -> torch.nn.Module:
        """An untrained model of ``job``'s architecture on the device (seed None: the job's);
        for a supplied model, the model as supplied (loaded once per job)."""
        torch.manual_seed(job.settings.seed if seed is None else seed)
        if job.supplied is not None:
            model = self._supplied_module(job, data)
        else:
            model = job.model.build(self.model_input(job, data), job.variant, job.model_params)
        model = model.to(self.device)
        return autocast_forward(model, job.amp, self.device) if job.amp else model

    def _supplied_module(self, job: TrainingJob, data: ImageData) -> torch.nn.Module:
        """The supplied model of ``job``, read once (the latest job's is kept)."""
        if job.key not in self._supplied:
            t0 = time.perf_counter()
            self._supplied = {job.key: (load_supplied(job, self.model_input(job, data)),
                                        time.perf_counter() - t0)}
        return self._supplied[job.key][0]

    def check_supplied(self, job: TrainingJob, data: ImageData, needs_gradients: bool
                       ) -> Contract:
        """Check a supplied model's input contract on ``data`` before any attack
        (:func:`harness.planning.supplied.check_contract`; a ModelContractError otherwise)."""
        assert job.supplied is not None
        model = self.build(job, data).eval()
        return check_contract(model, data, job.supplied.label, job.dataset.name,
                              needs_gradients=needs_gradients, mean=job.dataset.mean,
                              std=job.dataset.std, asked=job.supplied.asked)

    def trained(self, job: TrainingJob, data: ImageData) -> TrainedModel:
        """``job``'s model: from the cache, else trained now and cached.

        Training holds the job's lock, so two processes on one cache never train the same
        model: the second waits, then loads what the first saved.

        A damaged cache entry is found under the lock, then moved aside and the model
        retrained (or, with the cache's ``refuse_damaged``, the error raised).
        """
        if job.supplied is not None:     # trained elsewhere: loaded, never trained or cached
            model = self.build(job, data).eval()
            info = {"key_fields": job.key_fields, "supplied": job.supplied.key_fields(),
                    "load_seconds": self._supplied[job.key][1], "device": str(self.device)}
            return TrainedModel(model, info, cached=True)
        model = self.build(job, data)
        if self.no_cache:
            self.cache.discard(job.key)
        elif self.cache.has(job.key):
            try:
                return self._cached(job, model)
            except DamagedEntry:
                model = self.build(job, data)    # looked at again under the lock
        with exclusive(self.cache.lock_path(job.key)):
            if not self.no_cache and self.cache.has(job.key):
                try:
                    return self._cached(job, model)
                except DamagedEntry as damage:
                    self.cache.handle_damage(damage)
                    model = self.build(job, data)
            self.cache.check_partial(job.key)
            return self._train_and_save(job, data, model)

    def _cached(self, job: TrainingJob, model: torch.nn.Module) -> TrainedModel:
        info = self.cache.load(job.key, model, self.device)
        return TrainedModel(model.eval(), info, cached=True)

    def _train_and_save(self, job: TrainingJob, data: ImageData, model: torch.nn.Module
                        ) -> TrainedModel:
        report = self._train(job, data, model)
        info = {"key_fields": job.key_fields, "epochs_run": report.epochs_run,
                "best_epoch": report.best_epoch, "best_val_loss": report.best_val_loss,
                "train_seconds": report.seconds, "train_images": report.images,
                "train_images_per_s": report.images_per_s, "history": report.history,
                "device": str(self.device), "finished_at": now()}
        self.cache.save(job.key, model, info)
        return TrainedModel(model, info, cached=False)

    def _train(self, job: TrainingJob, data: ImageData, model: torch.nn.Module) -> TrainReport:
        train_data = TrainData.split(data, job.settings.val_fraction, job.settings.seed)
        fit = job.model.fit if job.defense.baseline else None   # the model's own, undefended
        if fit is not None or not job.defense.reads_uint8:
            train_data = train_data.floats()
        ctx = TrainContext(settings=job.settings, device=self.device,
                           dataset_eps=job.dataset.default_eps,
                           resume_path=self.cache.partial_path(job.key),
                           label=f"train {job.dataset.name}/{job.model_name}/{job.defense.name}",
                           show_progress=self.show_progress)
        if fit is not None:
            report = fit(model, train_data, ctx)
        else:
            trainer = job.defense.build(job.defense_params)
            if not isinstance(trainer, TrainingDefense):
                raise not_built(trainer, TrainingDefense, f"defense {job.defense.name}")
            report = trainer.train(model, train_data, ctx)
        model.eval()
        return report

    def fresh(self, job: TrainingJob, data: ImageData, seed: int | None = None
              ) -> torch.nn.Module:
        """An untrained model of ``job``'s architecture; for a supplied model, the model read
        again with its parameters initialized afresh
        (:func:`harness.planning.supplied.reinitialize`)."""
        if job.supplied is None:
            return self.build(job, data, seed)
        torch.manual_seed(job.settings.seed if seed is None else seed)
        copy = load_supplied(job, self.model_input(job, data))    # its own parameters
        return reinitialize(copy).to(self.device)

    def members(self, job: TrainingJob, data: ImageData) -> tuple[torch.Tensor, torch.Tensor]:
        """The images and labels ``job``'s model was fitted on (its training split)."""
        if job.key not in self._members:
            fitted = TrainData.split(self.floats(data), job.settings.val_fraction,
                                     job.settings.seed)
            self._members = {job.key: (fitted.x, fitted.y)}    # one job's at a time
        return self._members[job.key]

    def floats(self, data: ImageData) -> ImageData:
        """``data`` with float images, converted once per data set (the latest one's kept):
        what attack contexts and members are handed (see :class:`ImageData`)."""
        if self._float_view is None or self._float_view[0] is not data:
            self._float_view = (data, data.floats())
        return self._float_view[1]

    def context(self, cell: Cell, trained: TrainedModel, data: ImageData,
                seed: int) -> AttackContext:
        """What a non-evasion attack or a detector of ``cell`` is handed."""
        job = cell.job
        train = victim_trainer(job.settings, self.device, job.dataset.default_eps,
                               data.num_classes, job.model.fit, show_progress=self.show_progress,
                               label_suffix=f" {job.dataset.name}/{job.model_name}")
        return AttackContext(data=self.floats(data), device=self.device, seed=seed,
                             dataset_eps=job.dataset.default_eps,
                             new_model=lambda seed=None: self.fresh(job, data, seed),
                             train=train, clean_model=lambda: trained.model,
                             n_test=cell.n_test,
                             members=None if job.supplied else self.members(job, data),
                             model_name=job.model_name, show_progress=self.show_progress)
