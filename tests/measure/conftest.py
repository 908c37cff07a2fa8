from __future__ import annotations

import numpy as np
import pytest
from ._measure_ref import make_labels


@pytest.fixture(scope="session")
def labels() -> np.ndarray:
    return make_labels()
