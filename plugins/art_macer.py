"""Plugin ``art-macer``: MACER (Zhai et al. 2020), certifiable robust training through the
smoothed classifier's certified radius, from ART (``PyTorchMACER``).

Each minibatch is copied ``gaussian_samples`` times with Gaussian noise of ``sigma``; the loss
is the cross-entropy of the softmax averaged over the copies plus ``lmbda`` times a hinge on
the soft certified radius (Phi^-1 of the top two averaged ``beta``-scaled softmax scores,
within ``gamma``), over the images the smoothed classifier gets right. ART does the work of
each epoch (its ``fit`` for one epoch, on the model itself with an Adam optimizer at the run's
learning rate); the harness's one training loop (:func:`harness.train.loop.fit_epochs`) runs
the epochs, seeds torch's generator per epoch (ART draws the noise and shuffles from it),
early-stops on the clean validation loss and resumes. ART does not expose the objective on
validation batches, so ``early_stop_on="objective"`` is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from harness import DefenseSpec, ResolvedOptions, count, hookimpl, options, positive

if TYPE_CHECKING:
    import torch

    from harness import TrainContext, TrainData, TrainReport

OPTIONS = options(
    positive("sigma", 0.25, "standard deviation of the Gaussian noise, in pixel units"),
    count("gaussian_samples", 16, "noisy copies of each image per step", high=256),
    positive("beta", 16.0, "inverse temperature of the soft smoothed classifier"),
    positive("gamma", 8.0, "hinge of the certified-radius loss"),
    positive("lmbda", 12.0, "weight of the certified-radius loss"),
)


class MACER:
    """ART's PyTorchMACER on the harness's loop."""

    def __init__(self, options: ResolvedOptions):
        self.options = options

    def train(self, model: torch.nn.Module, data: TrainData, ctx: TrainContext) -> TrainReport:
        """Train ``model`` in place with MACER's objective, one ART epoch per loop epoch."""
        import torch
        from art.estimators.certification.randomized_smoothing import PyTorchMACER

        from harness import fit_epochs, refuse_objective_early_stop, to_numpy

        refuse_objective_early_stop(ctx.settings, "defense macer")
        o = self.options
        optimizer = torch.optim.Adam(model.parameters(), lr=ctx.settings.lr)
        estimator = PyTorchMACER(
            model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=tuple(data.x.shape[1:]),
            nb_classes=data.num_classes, optimizer=optimizer, clip_values=(0.0, 1.0),
            device_type="gpu" if ctx.device.type == "cuda" else "cpu", scale=o.sigma,
            gaussian_samples=o.gaussian_samples, beta=o.beta, gamma=o.gamma, lmbda=o.lmbda)
        x, y = to_numpy(data.x), data.y.cpu().numpy()

        def run_epoch(_epoch: int) -> None:
            estimator.fit(x, y, batch_size=ctx.settings.batch_size, nb_epochs=1)

        return fit_epochs(model, data, ctx, run_epoch, optimizer=optimizer)


@hookimpl
def harness_register_defenses(register: Callable[[DefenseSpec], None]) -> None:
    """Register ``macer``."""
    register(DefenseSpec(
        name="macer",
        description="MACER (Zhai et al. 2020) through ART: the smoothed classifier's soft "
                    "certified radius maximized during training",
        build=MACER,
        stage="training",
        answers=frozenset({"evasion", "certification"}),
        options=OPTIONS,
        smoke_options={"gaussian_samples": 2},
        augments=False,
    ))
