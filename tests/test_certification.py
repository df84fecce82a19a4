"""Certification (randomized smoothing): the certificates equal a second implementation of
Cohen et al.'s pseudo-code fed the same noise, approach the exact radius of a smoothed linear
classifier (its distance to the hyperplane), are checked before they are scored, and a
deliberately broken certificate is caught by the attack every cell runs (flag V, no number).
"""

from __future__ import annotations

import json
from statistics import NormalDist

import pytest
import torch
from scipy.stats import binomtest

from harness import AttackSpec, Certificates, PluginInfo, hookimpl
from harness.cli import main
from harness.contracts.certification import check_certificates
from harness.planning import loading
from harness.run.evaluators.certification import attack_certificates, l2_pgd
from harness.testing import tiny_image_data, trained_tiny_classifier
from harness.util.errors import InvalidAttackOutput
from harness_plugins.smoothing import RandomizedSmoothing


def _settings(**given) -> dict:
    return {"sigma": 0.25, "n0": 50, "n": 500, "alpha": 0.001, "batch": 500,
            "eot_samples": 4, "seed": 3, **given}


def _certifier(**given) -> RandomizedSmoothing:
    return RandomizedSmoothing(**_settings(**given))


def _reference_certify(model, x, sigma, n0, n, alpha, seed):
    """CERTIFY as Cohen et al.'s pseudo-code states it, written apart from the plugin: the
    same noise (one draw of n0, then one of n, per image, from a generator seeded alike), the
    Clopper-Pearson bound from scipy's exact binomial interval, Phi^-1 from the standard
    library."""
    gen = torch.Generator().manual_seed(seed)
    classes, radii = [], []
    with torch.no_grad():
        for image in x:
            noise0 = sigma * torch.randn((n0, *image.shape), generator=gen)
            counts0 = torch.bincount(model(image + noise0).argmax(1), minlength=10)
            guess = int(counts0.argmax())
            noise = sigma * torch.randn((n, *image.shape), generator=gen)
            wins = int((model(image + noise).argmax(1) == guess).sum())
            low = binomtest(wins, n).proportion_ci(1 - 2 * alpha, method="exact").low
            if low < 0.5:
                classes.append(-1)
                radii.append(0.0)
            else:
                classes.append(guess)
                radii.append(sigma * NormalDist().inv_cdf(low))
    return classes, radii


def test_certificates_equal_a_second_implementation_of_the_pseudo_code():
    model = trained_tiny_classifier()
    x = tiny_image_data().x_test[:12].float()
    found = _certifier().certify(model, x)
    classes, radii = _reference_certify(model, x, 0.25, 50, 500, 0.001, 3)
    assert found.prediction.tolist() == classes
    assert found.radius.tolist() == pytest.approx(radii, abs=1e-9)
    assert any(c != -1 for c in classes)          # the comparison certifies something


class _Linear(torch.nn.Module):
    """A two-class linear classifier ``sign(w.x + b)`` as logits ``[0, w.x + b]``."""

    def __init__(self, w: torch.Tensor, b: float):
        super().__init__()
        self.w, self.b = w, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(score), score], 1)


def test_the_certified_radius_of_a_smoothed_linear_classifier_approaches_its_exact_radius():
    """Smoothing a linear classifier gives pA = Phi(d / sigma), d the image's distance to the
    hyperplane, so its exact certified radius is d: a certificate never exceeds it and, at
    n = 100,000, falls short of it by the Clopper-Pearson slack only."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(64, generator=gen)
    x = torch.rand((16, 1, 8, 8), generator=gen)
    model = _Linear(w, -float((x.flatten(1) @ w).median()))
    distance = (x.flatten(1) @ w + model.b).abs() / w.norm()
    sigma = 0.5
    found = _certifier(sigma=sigma, n0=100, n=100_000, batch=25_000).certify(model, x)
    # Below the cap of n = 100,000, and far enough from the hyperplane (pA >= Phi(0.2) =
    # 0.58) that n0 = 100 draws pick the right class to certify.
    inside = (distance > 0.2 * sigma) & (distance < 3 * sigma)
    assert bool(inside.sum() >= 8)
    radius = found.radius.float()
    assert bool((radius <= distance + 1e-6).all())
    assert radius[inside].tolist() == pytest.approx(distance[inside].tolist(), abs=0.03)


def test_the_radius_cap_is_sigma_times_the_quantile_of_alpha_to_the_one_over_n():
    for n, times_sigma in ((100, 1.50), (1_000, 2.46), (10_000, 3.20), (100_000, 3.81)):
        assert _certifier(sigma=2.0, n=n).max_radius() == pytest.approx(2 * times_sigma,
                                                                         abs=0.01)


def test_certificates_are_checked_before_they_are_scored():
    good = Certificates(prediction=torch.tensor([1, -1]), radius=torch.tensor([0.3, 0.0]))
    assert check_certificates("c", good, 2, 10, 0.5) is good
    bad = {
        "above the largest its sample size allows":
            Certificates(torch.tensor([1, 2]), torch.tensor([0.3, 0.9])),
        "gave a radius to an image it abstains on":
            Certificates(torch.tensor([1, -1]), torch.tensor([0.3, 0.1])),
        "outside \\[-1, 10\\)": Certificates(torch.tensor([1, 10]), torch.tensor([0.3, 0.1])),
        "int64 classes and float radii":
            Certificates(torch.tensor([1.0, 2.0]), torch.tensor([0.3, 0.1])),
        "for 2 images": Certificates(torch.tensor([1]), torch.tensor([0.3])),
        "negative or non-finite": Certificates(torch.tensor([1, 2]),
                                               torch.tensor([float("nan"), 0.1])),
    }
    for message, certificates in bad.items():
        with pytest.raises(InvalidAttackOutput, match=f"certifier 'c' .*{message}"):
            check_certificates("c", certificates, 2, 10, 0.5)
    with pytest.raises(InvalidAttackOutput, match="not Certificates"):
        check_certificates("c", (good.prediction, good.radius), 2, 10, 0.5)


class _Inflated(RandomizedSmoothing):
    """A broken certifier: every image it does not abstain on gets the largest radius."""

    def certify(self, model, x):
        found = super().certify(model, x)
        cap = torch.full_like(found.radius, self.max_radius())
        return Certificates(found.prediction, torch.where(found.prediction >= 0, cap, 0.0))


def test_the_attack_at_the_certified_radius_breaks_inflated_certificates_not_honest_ones():
    model = trained_tiny_classifier()
    data = tiny_image_data()
    x, y = data.x_test[:32].float(), data.y_test[:32]
    settings = {"sigma": 0.5, "n": 2_000, "batch": 2_000}
    for certifier, breaks in ((_certifier(**settings), False),
                              (_Inflated(**_settings(**settings)), True)):
        found = certifier.certify(model, x)
        checked, broken = attack_certificates(certifier, model, x, y, found.prediction,
                                              found.radius)
        assert checked > 0
        assert (broken > 0) == breaks, (type(certifier).__name__, checked, broken)


def test_l2_pgd_stays_within_each_images_radius_and_in_range():
    model = trained_tiny_classifier()
    x = tiny_image_data().x_test[:8].float()
    y = model(x).argmax(1)
    eps = torch.linspace(0.1, 2.0, 8)
    logp = torch.nn.Sequential(model, torch.nn.LogSoftmax(1))
    x_adv = l2_pgd(logp, x, y, eps)
    assert bool(((x_adv - x).flatten(1).norm(dim=1) <= eps + 1e-5).all())
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    assert bool((model(x_adv).argmax(1) != y).any())


class _BrokenPlugin:
    @staticmethod
    @hookimpl
    def harness_register_attacks(register):
        from harness_plugins.smoothing import OPTIONS

        register(AttackSpec(
            name="inflated-smoothing", description="randomized smoothing claiming the cap",
            build=lambda o: _Inflated(sigma=o.sigma, n0=o.n0, n=o.n, alpha=o.alpha,
                                      batch=o.batch, eot_samples=o.eot_samples, seed=o.seed),
            category="certification", threat_model="white-box", norm="2", bounded=False,
            needs=frozenset({"gradients", "labels"}), options=OPTIONS))


def test_a_broken_certificate_is_flagged_v_and_its_numbers_are_withheld(tmp_path, capsys):
    info = PluginInfo(name="inflated-smoothing", distribution="<in-process>", version="0")
    loading.TEST_PLUGINS.append((info, _BrokenPlugin()))
    try:
        code = main(["bench", "--dataset", "digits", "--defense", "none", "--attack",
                     "smoothing,inflated-smoothing", "--n-train", "300", "--epochs", "2",
                     "--n-test", "40", "--attack-opt", "smoothing.n=1000",
                     "--attack-opt", "smoothing.sigma=0.5",
                     "--attack-opt", "inflated-smoothing.n=1000",
                     "--attack-opt", "inflated-smoothing.sigma=0.5",
                     "--db", str(tmp_path / "r.sqlite"), "--json", str(tmp_path / "r.json"),
                     "--quiet", "--format", "markdown"])
    finally:
        loading.TEST_PLUGINS.pop()
    out = capsys.readouterr().out
    assert code == 0, out
    records = {r["attack"]: r for r in json.loads((tmp_path / "r.json").read_text())["records"]}
    honest = records["smoothing"]["metrics"]
    assert honest["certificates_broken"] == 0 and honest["certificates_checked"] > 20
    assert honest["empirical_n"] == 40
    for r in (0.25, 0.5, 0.75, 1.0):               # up to the cap of n = 1,000 at sigma 0.5
        assert honest[f"certified_acc@{r:g}"] <= honest[f"empirical_acc@{r:g}"] + 0.05
    assert "empirical_acc@1.5" not in honest and honest["radius_cap"] < 1.5
    assert records["inflated-smoothing"]["metrics"]["certificates_broken"] > 0
    rows = {line.split("|")[3].strip(): line for line in out.splitlines()
            if line.startswith("| paper-cnn")}
    assert "| V " in rows["inflated-smoothing"] and "%" not in rows["inflated-smoothing"]
    assert "%" in rows["smoothing"] and "| V " not in rows["smoothing"]
    assert "- **V**: a certificate is broken" in out
