"""Feature splitting: decoder cosines on known vectors, nearest parents, the family-counting rule."""

import numpy as np
import pytest
import torch

from monosemantic import splitting as sp


def test_cosine_matrix_known_vectors():
    a = np.array([[1.0, 0.0], [1.0, 1.0]])
    b = np.array([[2.0, 0.0], [0.0, 3.0], [-1.0, -1.0]])
    c = sp.cosine_matrix(a, b)
    s = 1 / np.sqrt(2)
    assert c == pytest.approx(np.array([[1.0, 0.0, -s], [s, s, -1.0]]))


def test_unit_columns_and_nearest_parents():
    W_small = torch.tensor([[1.0, 0.0], [0.0, 5.0], [0.0, 0.0]])  # (d=3, F=2): columns e0, 5·e1
    cols = sp.unit_columns(W_small)
    assert cols == pytest.approx(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    # children: two split from e0 (at 30° either side towards e2), one equal to e1
    t = np.deg2rad(30)
    large = np.array([[np.cos(t), 0, np.sin(t)], [np.cos(t), 0, -np.sin(t)], [0, 1, 0]])
    idx, cos = sp.nearest_parents(large, cols)
    assert list(idx) == [0, 0, 1]
    assert cos == pytest.approx([np.cos(t), np.cos(t), 1.0])


def test_count_family_rule():
    spec = np.array([0.9, 0.5, 0.49, 0.95, 1.0])
    fires = np.array([100, 20, 500, 19, 0])
    assert list(sp.count_family(spec, fires, min_specificity=0.5, min_active=20)) == [0, 1]
