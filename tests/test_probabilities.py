"""The one definition of action probabilities and their ensemble mean
(``rllib_algospace.inference.probabilities``), which the live path, the
checkpoint and ensemble policies and export share."""
from __future__ import annotations

import numpy as np
import pytest

from rllib_algospace.inference.probabilities import mean_probabilities, softmax


def test_softmax_is_stable_and_sums_to_one_on_each_row():
    z = np.array([[1000.0, 1001.0, 999.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    p = softmax(z)
    assert p.dtype == np.float64
    np.testing.assert_allclose(p.sum(axis=-1), 1.0)
    e = np.exp(np.array([1.0, 2.0, 0.0]))
    np.testing.assert_allclose(p[0], e / e.sum())
    np.testing.assert_allclose(p[1], 1 / 3)
    assert softmax([0.0, np.log(3.0)]).tolist() == pytest.approx([0.25, 0.75])


def test_mean_is_uniform_without_weights_and_weighted_with_them():
    a = {"risk": np.array([1.0, 0.0]), "tactical": np.array([0.2, 0.8])}
    b = {"risk": np.array([0.0, 1.0]), "tactical": np.array([0.6, 0.4])}
    uniform = mean_probabilities([a, b])
    assert uniform["risk"].tolist() == [0.5, 0.5]
    np.testing.assert_allclose(uniform["tactical"], [0.4, 0.6])
    weighted = mean_probabilities([a, b], [0.75, 0.25])
    np.testing.assert_allclose(weighted["risk"], [0.75, 0.25])
    np.testing.assert_allclose(weighted["tactical"], [0.3, 0.7])


def test_members_that_disagree_on_the_action_count_or_weights_are_refused():
    with pytest.raises(ValueError, match="different action counts for agent 'risk'"):
        mean_probabilities([{"risk": np.ones(4) / 4}, {"risk": np.ones(3) / 3}])
    with pytest.raises(ValueError, match="2 weights for 1 ensemble members"):
        mean_probabilities([{"risk": np.ones(4) / 4}], [0.5, 0.5])
    with pytest.raises(ValueError, match="no ensemble members"):
        mean_probabilities([])
