"""The frontier plot's one piece of logic (the command's test draws a whole plot)."""

from __future__ import annotations

import numpy as np

from cascade.tuning.plot import pareto_front


def test_the_pareto_front_keeps_only_undominated_settings() -> None:
    points = np.array([[3.0, 0.9], [1.0, 0.5], [2.0, 0.4], [2.0, 0.8], [1.0, 0.6], [4.0, 0.9]])
    assert pareto_front(points).tolist() == [[1.0, 0.6], [2.0, 0.8], [3.0, 0.9]]
    assert pareto_front(np.empty((0, 2))).shape == (0, 2)
