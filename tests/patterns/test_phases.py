"""The bank builder's scoring phases: the label table and the sample rows."""

from __future__ import annotations

import datasets
import numpy as np
import torch

from lanic_hub.patterns import BankConfig
from lanic_hub.patterns.phases import label_table, sample_rows


def test_the_label_table_counts_only_positive_report_labels_and_reads_ground_truth():
    ds = datasets.Dataset.from_dict(
        {"Edema": [1.0, 0.0, None, -1.0], "gt_edema": [True, False, True, False], "other": [1, 1, 1, 1]}
    )
    names, Y = label_table(ds)
    assert names == ["Edema", "gt_edema"]  # CheXpert columns, then ground-truth factors; nothing else
    # uncertain (-1) and blank count as not positive
    assert Y.tolist() == [[True, True], [False, False], [False, True], [False, False]]


def test_the_sample_rows_are_a_seeded_sorted_subset_with_their_inverse():
    cfg = BankConfig(sample_rows=4, seed=3)
    s = sample_rows(10, cfg)
    assert len(s.pos) == 4 and torch.equal(s.pos, s.pos.sort().values)
    assert torch.equal(s.of[s.pos], torch.arange(4)) and int((s.of >= 0).sum()) == 4
    assert torch.equal(sample_rows(10, cfg).pos, s.pos)  # the seed alone decides it
    assert not torch.equal(sample_rows(10, BankConfig(sample_rows=4, seed=4)).pos, s.pos)
    everything = sample_rows(3, cfg)  # fewer rows than the sample: all of them
    assert everything.pos.tolist() == [0, 1, 2]
    assert np.array_equal(everything.of.numpy(), [0, 1, 2])
