"""Evaluate your own model with harness: build a small CNN, train it for a few steps on the
training split of the 8x8 digits that scikit-learn ships, and ask harness how robust it is
(FGSM and PGD at eps 0.1, the per-image worst case, the checks), without writing a plugin.

Run: python examples/your-model/evaluate_your_model.py
"""

import torch
from torch import nn

import harness


def train_small_cnn(steps: int = 300, seed: int = 0) -> nn.Module:
    """A small CNN trained on harness's digits training split (images in [0, 1])."""
    torch.manual_seed(seed)
    data = harness.load_registry().dataset("digits").load(harness.DataOptions())
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 2 * 2, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        batch = torch.randint(0, len(data.x_train), (64,))
        loss = nn.functional.cross_entropy(model(data.x_train[batch]), data.y_train[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


if __name__ == "__main__":
    model = train_small_cnn()
    results = harness.evaluate(model, dataset="digits", attacks=["fgsm", "pgd"], eps=0.1,
                               label="my-cnn", store=None)
    print(results.summary())
    for row in results.rows:
        print(f"{row.model}: clean {row.clean_acc:.2%}, worst case "
              f"{row.worst.robust_acc:.2%} over {row.worst.n} images")
