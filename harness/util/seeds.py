"""Seeds derived by name: one run seed, and a separate stream for every (spec, purpose).

``derive_seed(run_seed, "pgd", "random-start")`` is a stable 32-bit integer from
``numpy.random.SeedSequence``; two purposes never share a stream by accident, as integer
offsets (``seed + 7``) could. NumPy (and torch) are imported only when a seed is derived, so
plugins may import this module at registration.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


def _words(text: str) -> list[int]:
    digest = hashlib.sha256(text.encode()).digest()
    return [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]


def derive_seed(run_seed: int, *names: str) -> int:
    """A 32-bit seed for ``names`` (e.g. spec name, purpose) under ``run_seed``."""
    import numpy as np

    entropy = [int(run_seed) % 2**63, *(w for n in names for w in _words(n))]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint32)[0])


def seed_globals(run_seed: int, *names: str) -> int:
    """Seed torch's, NumPy's and Python's global generators (libraries such as ART draw from
    NumPy's, and ART's universal perturbations from Python's ``random``) with
    :func:`derive_seed`; return the seed."""
    import random

    import numpy as np
    import torch

    seed = derive_seed(run_seed, *names)
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    return seed
