"""Built-in certification ``smoothing``: randomized smoothing (Cohen, Rosenfeld and Kolter
2019), CERTIFY and PREDICT as the paper's pseudo-code states them, in torch.

The smoothed classifier g(x) is the class the base model gives most often to x + N(0,
sigma^2 I). CERTIFY: the top class of ``n0`` noisy copies is the guess cA; ``n`` fresh copies
count how often cA wins; pA is the one-sided (1 - alpha) Clopper-Pearson lower bound on that
share; below 1/2 it abstains, else g is certified to return cA within the L2 radius
sigma * Phi^-1(pA). PREDICT: the top two classes of ``n`` copies, and an abstention unless a
two-sided binomial test of their counts rejects a tie at level alpha. Noise is added without
clipping to [0, 1], as in the paper. The noise comes from a generator of the certifier's own,
seeded, so a cell gives the same certificates twice.

The largest radius ``n`` can certify is sigma * Phi^-1(alpha^(1/n)) (every draw agreeing):
about 2.46 sigma at n = 1,000, 3.20 sigma at 10,000, 3.81 sigma at 100,000 (alpha 0.001).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from harness import (
    AttackSpec,
    Certificates,
    ResolvedOptions,
    count,
    fraction,
    hookimpl,
    options,
    positive,
)

if TYPE_CHECKING:
    import torch

OPTIONS = options(
    positive("sigma", 0.25, "standard deviation of the Gaussian noise, in pixel units"),
    count("n0", 100, "noise draws that pick the class to certify"),
    count("n", 10_000, "noise draws that bound its probability (and PREDICT's draws)",
          high=10_000_000),
    fraction("alpha", 0.001, "the certificate fails with probability at most alpha"),
    count("batch", 1_000, "noise draws per forward pass"),
    count("eot_samples", 16, "noise draws averaged per forward pass of the differentiable "
          "smoothed classifier that attacks are crafted on"),
    count("seed", 0, "seed of the noise", low=0),
)


class RandomizedSmoothing:
    """CERTIFY and PREDICT of Cohen et al. (2019) with Gaussian noise of ``sigma``."""

    def __init__(self, sigma: float, n0: int, n: int, alpha: float, batch: int,
                 eot_samples: int, seed: int):
        self.sigma, self.n0, self.n, self.alpha = sigma, n0, n, alpha
        self.batch, self.eot_samples, self.seed = batch, eot_samples, seed
        self._generators: dict[str, torch.Generator] = {}

    def generator(self, device: torch.device) -> torch.Generator:
        """The certifier's noise generator on ``device`` (seeded once, then one stream)."""
        import torch

        if str(device) not in self._generators:
            self._generators[str(device)] = torch.Generator(device=device).manual_seed(
                self.seed)
        return self._generators[str(device)]

    def noise(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """Gaussian noise of ``sigma`` from the certifier's generator."""
        import torch

        return self.sigma * torch.randn(shape, generator=self.generator(device), device=device)

    def counts(self, model: torch.nn.Module, x: torch.Tensor, draws: int) -> torch.Tensor:
        """How often the base ``model`` gives each class to ``draws`` noisy copies of the
        single image ``x`` (C,H,W)."""
        import torch

        total: torch.Tensor | None = None
        with torch.no_grad():
            for start in range(0, draws, self.batch):
                b = min(self.batch, draws - start)
                logits = model(x.unsqueeze(0) + self.noise((b, *x.shape), x.device))
                found = torch.bincount(logits.argmax(1), minlength=logits.shape[1])
                total = found if total is None else total + found
        assert total is not None
        return total.cpu()

    def certify(self, model: torch.nn.Module, x: torch.Tensor) -> Certificates:
        """CERTIFY each image of ``x``: its class and certified L2 radius, or -1 and 0."""
        import torch
        from scipy.stats import beta, norm

        classes, radii = [], []
        for image in x:
            guess = int(self.counts(model, image, self.n0).argmax())
            wins = int(self.counts(model, image, self.n)[guess])
            p_low = float(beta.ppf(self.alpha, wins, self.n - wins + 1)) if wins else 0.0
            certified = p_low >= 0.5
            classes.append(guess if certified else -1)
            radii.append(self.sigma * float(norm.ppf(p_low)) if certified else 0.0)
        return Certificates(prediction=torch.tensor(classes, dtype=torch.int64),
                            radius=torch.tensor(radii, dtype=torch.float64))

    def predict(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """PREDICT each image of ``x``: the smoothed class, or -1 (abstain)."""
        import torch
        from scipy.stats import binomtest

        out = []
        for image in x:
            top = self.counts(model, image, self.n).topk(2)
            first, second = (int(v) for v in top.values)
            p_value = binomtest(first, first + second, 0.5).pvalue
            out.append(int(top.indices[0]) if p_value <= self.alpha else -1)
        return torch.tensor(out, dtype=torch.int64)

    def smoothed(self, model: torch.nn.Module) -> torch.nn.Module:
        """Log of the base model's softmax averaged over ``eot_samples`` fresh noise draws
        per image: a differentiable stand-in for the smoothed classifier (EoT)."""
        import torch

        certifier = self

        class Smoothed(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                m = certifier.eot_samples
                noisy = x.repeat_interleave(m, 0)
                noisy = noisy + certifier.noise(tuple(noisy.shape), x.device)
                probs = torch.softmax(self.model(noisy), 1).view(len(x), m, -1).mean(1)
                return probs.clamp_min(1e-12).log()

        return Smoothed().eval()

    def max_radius(self) -> float:
        """sigma * Phi^-1(alpha^(1/n)): the radius when every one of the n draws agrees."""
        from scipy.stats import norm

        return self.sigma * float(norm.ppf(self.alpha ** (1.0 / self.n)))


def build(options: ResolvedOptions) -> RandomizedSmoothing:
    """The certifier with its resolved options."""
    return RandomizedSmoothing(sigma=options.sigma, n0=options.n0, n=options.n,
                               alpha=options.alpha, batch=options.batch,
                               eot_samples=options.eot_samples, seed=options.seed)


@hookimpl
def harness_register_attacks(register: Callable[[AttackSpec], None]) -> None:
    """Register ``smoothing``."""
    register(AttackSpec(
        name="smoothing",
        description="randomized smoothing (Cohen et al. 2019): certified L2 radius per image "
                    "(CERTIFY), the smoothed classifier's accuracy and abstentions (PREDICT)",
        build=build,
        category="certification",
        threat_model="white-box",
        norm="2",
        bounded=False,
        needs=frozenset({"gradients", "labels"}),
        budget_images=500,
        options=OPTIONS,
        smoke_options={"n0": 10, "n": 200, "batch": 200, "eot_samples": 2},
        limits=("the certified radius is capped by n, not by the model: at most "
                "sigma * Phi^-1(alpha^(1/n)), about 3.2 sigma at n = 10,000 (alpha 0.001)"),
    ))
