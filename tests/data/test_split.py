"""The stratified selection against one-by-one Python references, on small made-up labels."""

from __future__ import annotations

import pytest
import torch

from nnstudy.data._split import apportion, rank_in_class, split_and_thin
from nnstudy.errors import SpecError
from nnstudy.spec import DataSpec


@pytest.mark.parametrize("seed", range(20))
def test_apportion_is_proportional_within_one_and_exact_in_total(seed):
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(0, 50, (10,), generator=g)
    total = int(torch.randint(0, int(counts.sum()) + 1, (1,), generator=g))
    quota = apportion(counts.clone(), total)
    assert int(quota.sum()) == total
    exact = counts.double() * total / max(int(counts.sum()), 1)
    assert bool(((quota - exact).abs() < 1).all())
    assert bool((quota <= counts).all())


def test_rank_in_class_matches_a_python_loop():
    labels = torch.randint(0, 4, (200,), generator=torch.Generator().manual_seed(1))
    seen: dict[int, int] = {}
    expected = []
    for y in labels.tolist():
        expected.append(seen.get(y, 0))
        seen[y] = seen.get(y, 0) + 1
    assert rank_in_class(labels, 4).tolist() == expected


def test_split_of_made_up_labels_is_stratified_and_disjoint():
    labels = torch.arange(1000) % 7  # classes of 143 or 142 items
    val, train = split_and_thin(labels, DataSpec(validation=0.2, split_seed=3), 7)
    assert len(val) == 200 and len(train) == 800
    assert not set(val.tolist()) & set(train.tolist())
    for c in range(7):
        n_c = int((labels == c).sum())
        assert abs(int((labels[val] == c).sum()) - 0.2 * n_c) < 1


def test_fraction_that_keeps_nothing_is_a_spec_error():
    labels = torch.arange(100) % 10
    with pytest.raises(SpecError, match="data.fraction = 0.001 of 90 training images"):
        split_and_thin(labels, DataSpec(fraction=0.001), 10)


def test_validation_that_leaves_no_training_image_is_a_spec_error():
    labels = torch.arange(10)
    with pytest.raises(SpecError, match="leaves no training images"):
        split_and_thin(labels, DataSpec(validation=0.99), 10)
