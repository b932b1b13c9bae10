"""Reading a phantom table's ground truth back (``data.phantom.truth``): the columns each case
wrote, for every factor."""

from __future__ import annotations

import datasets
import numpy as np

from lanic_hub.data.phantom import ALL_FACTORS, FINDING_FACTORS, PhantomConfig, truth
from lanic_hub.data.phantom.sampling import sample_case


def test_presence_and_severity_read_back_what_the_cases_wrote():
    world = PhantomConfig(prevalence_scale=2.0)
    cases = [sample_case(world, np.random.default_rng((5, i, 1)), "train") for i in range(40)]
    ds = datasets.Dataset.from_list([c.ground_truth() for c in cases])
    want = np.array([[c.factor_present(f) for f in ALL_FACTORS] for c in cases])
    assert want.any(0).sum() > 5  # the table is not trivially empty
    assert np.array_equal(truth.presence(ds), want)
    assert np.array_equal(truth.presence_of(ds, "edema"), want[:, ALL_FACTORS.index("edema")])
    for f in FINDING_FACTORS:
        assert np.allclose(truth.severity(ds, f), [round(c.findings[f].severity, 4) for c in cases])
    assert truth.is_phantom(ds.column_names) and not truth.is_phantom(["Edema", "report"])
    assert set(ALL_FACTORS) <= set(truth.truth_columns(ds.column_names))


def test_column_names_round_trip():
    for f in ALL_FACTORS:
        assert truth.factor_of(truth.column(f)) == f
    assert truth.finding_factor("Pleural Effusion") == "pleural_effusion" in ALL_FACTORS
