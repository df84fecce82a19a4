"""Built-in defense ``smooth-adv``: SmoothAdv (Salman et al. 2019), adversarial training of the
smoothed classifier, on the harness's own epoch.

For each minibatch: ``noise_samples`` Gaussian draws of ``sigma`` per image, kept for the
whole step; ``steps`` of L2 PGD (step 2 * eps / steps, within ``eps``, images kept in [0, 1])
that raise the cross-entropy of the soft smoothed classifier (the softmax averaged over those
draws of x + delta + noise); then one update on the cross-entropy of every noisy copy of the
adversarial images (SmoothAdv-PGD with m = ``noise_samples``). The noise and PGD's start come
from torch's generator, which the loop seeds per epoch. Salman et al. also warm eps up over the
first epochs; this version trains at ``eps`` from the start. ART 1.20.1's ``PyTorchSmoothAdv``
is not used: it sets its PGD's ``norm`` (not its eps) to the warm-up value, so it attacks in
Linf and then in a "0.5-norm" instead of L2.
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
    positive("eps", 0.5, "L2 budget of the attack on the smoothed classifier", high=10.0),
    count("steps", 2, "L2 PGD steps per minibatch", high=100),
    count("noise_samples", 2, "noise draws per image (m)", high=64),
)


class SmoothAdv:
    """SmoothAdv-PGD with ``noise_samples`` draws of ``sigma``, ``steps`` L2 steps within
    ``eps``."""

    def __init__(self, sigma: float, eps: float, steps: int, noise_samples: int):
        self.sigma, self.eps, self.steps, self.noise_samples = sigma, eps, steps, noise_samples

    def examples(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """The noisy copies of the minibatch's adversarial images, and their labels."""
        import torch

        m, n = self.noise_samples, len(x)
        noise = self.sigma * torch.randn((n * m, *x.shape[1:]), device=x.device, dtype=x.dtype)
        shape = (-1,) + (1,) * (x.dim() - 1)
        delta = torch.zeros_like(x)
        training = model.training
        model.eval()
        for _ in range(self.steps):
            delta.requires_grad_(True)
            noisy = (x + delta).repeat_interleave(m, 0) + noise
            probs = torch.softmax(model(noisy), 1).view(n, m, -1).mean(1)
            loss = torch.nn.functional.nll_loss(probs.clamp_min(1e-12).log(), y)
            (grad,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                step = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)
                delta = delta + 2 * self.eps / self.steps * step
                size = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)
                delta = delta * torch.clamp(self.eps / size, max=1.0)
                delta = (x + delta).clamp(0, 1) - x
        model.train(training)
        adversarial = (x + delta.detach()).repeat_interleave(m, 0) + noise
        return adversarial, y.repeat_interleave(m, 0)

    def train(self, model: torch.nn.Module, data: TrainData, ctx: TrainContext) -> TrainReport:
        """Train ``model`` on the noisy adversarial copies of each minibatch."""
        from harness import train_supervised

        return train_supervised(model, data, ctx, augment=self.examples)


def build(options: ResolvedOptions) -> SmoothAdv:
    """The defense with its resolved options."""
    return SmoothAdv(sigma=options.sigma, eps=options.eps, steps=options.steps,
                     noise_samples=options.noise_samples)


@hookimpl
def harness_register_defenses(register: Callable[[DefenseSpec], None]) -> None:
    """Register ``smooth-adv``."""
    register(DefenseSpec(
        name="smooth-adv",
        description="SmoothAdv (Salman et al. 2019): L2 PGD on the smoothed classifier, "
                    "training on the noisy adversarial copies",
        build=build,
        stage="training",
        answers=frozenset({"evasion", "certification"}),
        options=OPTIONS,
        smoke_options={"steps": 1, "noise_samples": 2},
        reads_uint8=True,
    ))
