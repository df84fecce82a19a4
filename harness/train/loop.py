"""The one resumable training loop every training-stage defense plugs its epoch into.

:func:`fit_epochs` owns what makes trainings comparable: epochs, patience and early stopping
with the best weights kept, per-epoch seeds (torch's and NumPy's global generators, by name),
the learning-rate decay (an epoch without a better validation loss multiplies every
``param_group``'s rate by ``lr_decay``: Keras' ReduceLROnPlateau with patience 1; 1.0 turns it
off), the validation loss (:attr:`TrainSettings.early_stop_on`), the progress bar, a resume
state saved after every epoch, and an honest :class:`TrainReport`. A defense only supplies
``run_epoch(epoch)``, one pass over the training data.

:func:`train_supervised` is the harness's own epoch (Algorithm 1: Adam on softmax
cross-entropy, data reshuffled every epoch), optionally with a per-minibatch ``augment``
(Algorithm 2 passes FGSM pairs).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from harness.contracts.data import batches, to_float
from harness.contracts.settings import TrainSettings
from harness.contracts.training import Augment, EpochFn, TrainContext, TrainData, TrainReport
from harness.train.augment import epoch_augmenter
from harness.util.devices import synchronize
from harness.util.errors import UsageError
from harness.util.files import atomic_write, set_aside
from harness.util.progress import progress_bar
from harness.util.seeds import derive_seed, seed_globals

__all__ = ["Augment", "EpochFn", "TrainContext", "TrainData", "TrainReport", "fit_epochs",
           "refuse_objective_early_stop", "robust_objective", "train_supervised"]


def refuse_objective_early_stop(settings: TrainSettings, owner: str) -> None:
    """Raise :class:`UsageError` when ``settings`` stop early on the defense's objective: for
    defenses (``owner``) whose training objective cannot be measured on validation batches
    (the clean and the robust loss need nothing of the defense)."""
    if settings.early_stop_on == "objective":
        raise UsageError(
            f"{owner}: early_stop_on={settings.early_stop_on!r} needs the defense's training "
            "objective on validation batches, which only the harness's own epoch "
            "(train_supervised) provides; use early_stop_on='clean' or 'robust'")


def robust_objective(eps: float, seed: int, device: torch.device) -> Augment:
    """The validation batches of ``early_stop_on="robust"``: each batch's PGD-10 examples at
    ``eps`` (random starts from a generator seeded with ``seed``, so every epoch is measured
    from the same starts when a fresh objective is made per epoch)."""
    from harness.train.gradients import pgd_examples

    generator = torch.Generator(device=device).manual_seed(seed)

    def objective(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        return pgd_examples(model, x, y, eps, generator=generator), y

    return objective


def _validation_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                     objective: Augment | None, batch_size: int, temperature: float) -> float:
    """Mean softmax cross-entropy of ``model``'s logits / ``temperature`` on ``(x, y)`` in eval
    mode, each batch first passed through ``objective`` when given."""
    total, count = torch.zeros((), device=x.device), 0
    for idx in batches(len(x), batch_size, device=x.device):
        xb, yb = to_float(x[idx]), y[idx]
        model.eval()
        if objective is not None:
            xb, yb = objective(model, xb, yb)
        with torch.no_grad():
            logits = model(xb)
            if temperature != 1.0:
                logits = logits / temperature
            total += F.cross_entropy(logits, yb, reduction="sum")
        count += len(yb)
    return float(total) / max(count, 1)


def _load_states(path: Path | None, device: torch.device) -> dict:
    """The resume file's states by phase (empty when there is none); never unpickles.

    A file that cannot be read as a dict of states is named on stderr, moved to ``damaged/``
    beside it, and training starts over from epoch 0 (empty).
    """
    if path is None or not path.exists():
        return {}
    try:
        states = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch's unpickler, zip reader or EOF error: the file is damaged
        why = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    else:
        if isinstance(states, dict):
            return states
        why = "not a dict of training states"
    folder = path.parent / "damaged"
    set_aside(path, folder)
    print(f"harness: training state {path} is damaged: {why}; moved to {folder}/, training "
          "restarts from epoch 0", file=sys.stderr)
    return {}


def _save_state(path: Path, states: dict) -> None:
    """Write ``states`` (phase -> state) to ``path`` atomically, through a temporary file
    whose name no other process shares."""
    with atomic_write(path) as tmp:
        torch.save(states, tmp)


def _copy(state: dict) -> dict:
    return {k: v.detach().clone() for k, v in state.items()}


def _validation_objective(ctx: TrainContext, phase: str, validation_batch: Augment | None
                          ) -> Augment | None:
    """What each validation batch goes through before its loss, by ``early_stop_on``: nothing
    (clean), the defense's objective, or PGD at ``early_stop_eps`` (else the dataset's eps)."""
    s = ctx.settings
    if s.early_stop_on == "objective":
        return validation_batch
    if s.early_stop_on == "robust":
        eps = s.early_stop_eps if s.early_stop_eps is not None else ctx.dataset_eps
        return robust_objective(eps, derive_seed(s.seed, phase, "robust-validation"),
                                ctx.device)
    return None


def fit_epochs(model: torch.nn.Module, data: TrainData, ctx: TrainContext, run_epoch: EpochFn,
               *, optimizer: torch.optim.Optimizer, phase: str = "train",
               validation_batch: Augment | None = None, temperature: float = 1.0
               ) -> TrainReport:
    """Train ``model`` in place by calling ``run_epoch(epoch)`` (0-based) once per epoch.

    ``run_epoch`` makes one pass over ``data``'s training part, stepping ``optimizer`` (the
    optimizer whose learning rate is decayed and whose state is saved), and returns its mean
    training loss or None. Before each epoch torch's and NumPy's global generators are seeded
    from ``(settings.seed, phase, "epoch-N")``. After it, the validation loss is measured on
    ``data``'s validation part (the training part when there is none): the softmax
    cross-entropy of ``model``'s logits divided by ``temperature`` (a model trained at a
    temperature is validated at it), on each batch passed through ``validation_batch`` first
    when ``settings.early_stop_on`` is ``"objective"`` (``validation_batch`` is the defense's
    training objective; None: the clean loss is its objective), or through PGD when it is
    ``"robust"``. The best weights are kept,
    training stops after ``settings.patience`` epochs without improvement, and each such epoch
    multiplies the learning rate by ``settings.lr_decay``.

    The state is saved to ``ctx.resume_path`` under ``phase`` after every epoch (the file
    keeps every phase's, so a two-phase defense resumes in the phase it stopped in) and
    resumed from there. ``model`` ends with the best weights, in eval mode.
    """
    s = ctx.settings
    x_val, y_val = (data.x_val, data.y_val) if len(data.x_val) else (data.x, data.y)
    states = _load_states(ctx.resume_path, ctx.device)
    state = _LoopState.resume(states.get(phase), model, optimizer)
    label = ctx.label if phase == "train" else f"{ctx.label} ({phase})"
    bar = progress_bar(total=s.epochs, initial=state.epoch, desc=label, unit="epoch",
                       enabled=ctx.show_progress)
    try:
        while state.epoch < s.epochs and state.bad < s.patience:
            synchronize(ctx.device)
            t0 = time.perf_counter()
            seed_globals(s.seed, phase, f"epoch-{state.epoch}")
            lr = float(optimizer.param_groups[0]["lr"])
            train_loss = run_epoch(state.epoch)
            val = _validation_loss(model, x_val, y_val,
                                   _validation_objective(ctx, phase, validation_batch),
                                   2 * s.batch_size, temperature)
            synchronize(ctx.device)
            state.end_epoch(model, optimizer, val, lr, train_loss, phase,
                            time.perf_counter() - t0, s.lr_decay)
            bar.update(1)
            bar.set_postfix(val_loss=f"{val:.4f}", best=state.best_epoch)
            if ctx.resume_path is not None:
                states[phase] = state.saved(model, optimizer)
                _save_state(ctx.resume_path, states)
    finally:
        bar.close()
    model.load_state_dict(state.best_state)
    model.eval()
    return TrainReport(epochs_run=state.epoch, best_epoch=state.best_epoch,
                       best_val_loss=state.best_val, seconds=state.seconds,
                       images=len(data.x) * state.epoch, history=state.history)


@dataclass
class _LoopState:
    """Where a training phase stands between epochs (what its resume file keeps)."""

    best_state: dict[str, torch.Tensor]
    epoch: int = 0
    best_val: float = math.inf
    best_epoch: int = -1
    bad: int = 0
    seconds: float = 0.0
    history: list[dict] = field(default_factory=list)

    @classmethod
    def resume(cls, saved: dict | None, model: torch.nn.Module,
               optimizer: torch.optim.Optimizer) -> _LoopState:
        """A fresh state, or the saved one loaded back into ``model`` and ``optimizer``."""
        if saved is None:
            return cls(_copy(model.state_dict()))
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        return cls(saved["best_state"], saved["epoch"], saved["best_val"], saved["best_epoch"],
                   saved["bad_epochs"], saved["seconds"], saved["history"])

    def end_epoch(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, val: float,
                  lr: float, train_loss: float | None, phase: str, seconds: float,
                  lr_decay: float) -> None:
        """Record an epoch: history, best weights, or one more bad epoch and a decayed rate."""
        self.seconds += seconds
        self.epoch += 1
        entry: dict[str, int | float | str] = {"epoch": self.epoch, "lr": lr, "val_loss": val}
        if train_loss is not None:
            entry["train_loss"] = float(train_loss)
        if phase != "train":
            entry["phase"] = phase
        self.history.append(entry)
        if val < self.best_val:
            self.best_val, self.best_epoch, self.bad = val, self.epoch, 0
            self.best_state = _copy(model.state_dict())
        else:
            self.bad += 1
            for group in optimizer.param_groups:
                group["lr"] *= lr_decay

    def saved(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
        """What the resume file keeps for this phase."""
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "best_state": self.best_state, "epoch": self.epoch, "best_val": self.best_val,
                "best_epoch": self.best_epoch, "bad_epochs": self.bad, "seconds": self.seconds,
                "history": self.history}


def train_supervised(model: torch.nn.Module, data: TrainData, ctx: TrainContext,
                     augment: Augment | None = None) -> TrainReport:
    """Train ``model`` in place with the harness's own epoch, in :func:`fit_epochs`.

    Adam at ``settings.lr`` on softmax cross-entropy, the training part reshuffled every
    epoch (uint8 images converted batch by batch), each minibatch augmented first by
    ``settings.augment`` when set (its own seeded generator per epoch). ``augment(model, x,
    y)`` then turns each minibatch into the one the update is computed on (it is called with
    the model in eval mode and must return tensors on the same device); it is also the
    defense's objective for ``early_stop_on="objective"``.
    """
    s = ctx.settings
    optimizer = torch.optim.Adam(model.parameters(), lr=s.lr)

    def run_epoch(epoch: int) -> float:
        shuffle = torch.Generator().manual_seed(derive_seed(s.seed, "shuffle", f"epoch-{epoch}"))
        augmented = epoch_augmenter(s, epoch)
        running, seen = torch.zeros((), device=data.x.device), 0
        for idx in batches(len(data.x), s.batch_size, generator=shuffle, device=data.x.device):
            xb, yb = to_float(data.x[idx]), data.y[idx]
            if augmented is not None:
                xb = augmented(xb)
            if augment is not None:
                model.eval()
                xb, yb = augment(model, xb, yb)
            model.train()
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running += loss.detach() * len(yb)
            seen += len(yb)
        return float(running) / max(seen, 1)

    return fit_epochs(model, data, ctx, run_epoch, optimizer=optimizer, validation_batch=augment)
