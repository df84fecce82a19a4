"""Built-in defense ``none``: the undefended reference, trained as Algorithm 1 trains.

Adam on softmax cross-entropy, reshuffling every epoch, early stopping on the validation
loss with the best weights kept (:func:`harness.train.loop.train_supervised`).
"""

from __future__ import annotations

from collections.abc import Callable

from harness import BASELINE, DefenseSpec, ResolvedOptions, hookimpl, options

OPTIONS = options()


class StandardTraining:
    """Plain supervised training, no defense."""

    def train(self, model, data, ctx):
        """Train ``model`` on clean minibatches only."""
        from harness import train_supervised

        return train_supervised(model, data, ctx)


def build(options: ResolvedOptions) -> StandardTraining:
    """The defense; ``none`` declares no options, so ``options`` is empty."""
    return StandardTraining()


@hookimpl
def harness_register_defenses(register: Callable[[DefenseSpec], None]) -> None:
    """Register ``none``."""
    register(DefenseSpec(
        name="none",
        description="No defense: standard training (Algorithm 1), the reference row",
        build=build,
        stage="training",
        baseline=True,
        roles=frozenset({BASELINE}),
        options=OPTIONS,
        reads_uint8=True,
    ))
