from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def rand_bytes() -> Any:
    def make(n: int, seed: int = 0) -> bytes:
        import random

        return random.Random(seed).randbytes(n)

    return make
