"""The phantom generator: determinism, every factor really drawn, reports vs labels, shortcuts."""

from __future__ import annotations

import numpy as np
import pytest

from lanic_hub.constants import FINDINGS
from lanic_hub.data.phantom import ALL_FACTORS, PhantomConfig, ShortcutSpec, generate, render
from lanic_hub.data.phantom.case import FACTOR_OF_FINDING
from lanic_hub.data.phantom.report import label_report, reported_states, write_report
from lanic_hub.data.phantom.sampling import sample_case
from lanic_hub.errors import ConfigError


def test_deterministic_per_seed_and_worker_count():
    a = list(generate(12, seed=7, progress=False))
    b = list(generate(12, seed=7, num_proc=2, progress=False))
    c = list(generate(12, seed=8, progress=False))
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.image, y.image)
        assert x.report == y.report and x.labels == y.labels and x.plan == y.plan
    assert not all(np.array_equal(x.image, z.image) for x, z in zip(a, c, strict=True))
    assert a[0].image.dtype == np.uint8 and a[0].image.shape == (224, 224)


def test_image_size_configurable():
    st = next(iter(generate(1, seed=0, cfg=PhantomConfig(image_size=96), progress=False)))
    assert st.image.shape == (96, 96)


def _case_with(factor: str, cfg: PhantomConfig):
    for i in range(3000):
        case = sample_case(cfg, np.random.default_rng((11, i, 1)), "train")
        if case.factor_present(factor):
            if factor not in case.findings or case.findings[factor].severity >= 0.5:
                return i, case
    raise AssertionError(f"no case with {factor} in 3000 draws")


SIDED = {"pleural_effusion", "consolidation", "atelectasis"}


@pytest.mark.parametrize("factor", ALL_FACTORS)
def test_each_factor_is_drawn_in_its_region(factor):
    """Pixels differ from a control image with the same seed and that factor off, and for
    one-sided findings the change lies on the correct side (patient right = image left)."""
    cfg = PhantomConfig(prevalence_scale=3.0)
    i, case = _case_with(factor, cfg)
    on = render(case, 224, 11, i).astype(np.int16)
    off = render(case.without(factor), 224, 11, i).astype(np.int16)
    assert not case.without(factor).factor_present(factor)
    diff = np.abs(on - off)
    assert (diff > 12).sum() >= 20, f"{factor}: only {(diff > 12).sum()} pixels changed"
    if factor in SIDED and case.findings[factor].side in ("right", "left"):
        left, right = diff[:, :112].sum(), diff[:, 112:].sum()
        expected_left = case.findings[factor].side == "right"
        assert (left > right) == expected_left, (factor, case.findings[factor].side, left, right)


def test_cardiomegaly_ctr_recorded():
    cfg = PhantomConfig(prevalence_scale=3.0)
    _, case = _case_with("cardiomegaly", cfg)
    assert case.ctr > 0.5 and case.without("cardiomegaly").ctr < 0.5
    assert case.ground_truth()["gt_ctr"] == pytest.approx(case.ctr, abs=1e-4)


def test_clean_reports_state_the_truth_exactly():
    cfg = PhantomConfig().clean()
    for st in generate(150, seed=1, cfg=cfg, progress=False):
        for finding in FINDINGS:
            truth = st.case.findings[FACTOR_OF_FINDING[finding]].present
            assert st.labels[finding] == (1.0 if truth else 0.0), (finding, st.report)
        assert st.labels["Support Devices"] == (1.0 if st.case.devices else None)


def test_labeller_reads_back_every_reported_state():
    """Hedges, omissions and flips: the labels read from the text equal what was reported."""
    cfg = PhantomConfig(label_noise=0.1, uncertainty_rate=0.3, omit_negative_rate=0.4)
    for i in range(400):
        case = sample_case(cfg, np.random.default_rng((5, i, 1)), "train")
        rr = np.random.default_rng((5, i, 2))
        states = reported_states(case, cfg, rr)
        labels = label_report(write_report(case, states, rr))
        assert {f: labels[f] for f in FINDINGS} == states


@pytest.mark.parametrize("rate", [0.05, 0.2])
def test_label_noise_rate_matches_setting(rate):
    cfg = PhantomConfig(label_noise=rate, uncertainty_rate=0.0, subtle_miss_rate=0.0, omit_negative_rate=0.0)
    wrong = total = 0
    for i in range(1500):
        case = sample_case(cfg, np.random.default_rng((9, i, 1)), "train")
        states = reported_states(case, cfg, np.random.default_rng((9, i, 2)))
        for f in FINDINGS:
            total += 1
            wrong += (states[f] == 1.0) != case.findings[FACTOR_OF_FINDING[f]].present
    sd = np.sqrt(rate * (1 - rate) / total)
    assert abs(wrong / total - rate) < 4 * sd, (wrong / total, rate)


def test_shortcut_couples_in_chosen_split_only():
    spec = ShortcutSpec("portable_marker", "Edema", strength=1.0, splits=("train",))
    cfg = PhantomConfig(shortcuts=(spec,))
    tr = [sample_case(cfg, np.random.default_rng((2, i, 1)), "train") for i in range(600)]
    te = [sample_case(cfg, np.random.default_rng((2, i, 1)), "test") for i in range(600)]
    assert all(c.portable_marker == c.findings["edema"].present for c in tr)
    assert all("portable_marker" in c.shortcut_coupled for c in tr)
    e = np.array([c.findings["edema"].present for c in te])
    p = np.array([c.portable_marker for c in te])
    assert abs(np.corrcoef(e, p)[0, 1]) < 0.3
    assert not any(c.shortcut_coupled for c in te)


def test_bad_config_is_refused():
    with pytest.raises(ConfigError, match="severity_mix"):
        PhantomConfig(severity_mix=(0.5, 0.5, 0.5, 0.0))
    with pytest.raises(ConfigError, match="not a device or artifact"):
        ShortcutSpec("edema", "Edema")
    with pytest.raises(ConfigError, match="strength"):
        ShortcutSpec.parse("chest_tube:Pleural Effusion:lots")


def test_prevalences_are_realistic():
    cases = [sample_case(PhantomConfig(), np.random.default_rng((4, i, 1)), "train") for i in range(3000)]
    prev = {f: np.mean([c.factor_present(f) for c in cases]) for f in ALL_FACTORS}
    assert 0.12 < prev["pleural_effusion"] < 0.32 and 0.1 < prev["cardiomegaly"] < 0.28
    assert 0.03 < prev["consolidation"] < 0.12 and 0.07 < prev["edema"] < 0.2
    edema = np.array([c.factor_present("edema") for c in cases])
    cmg = np.array([c.factor_present("cardiomegaly") for c in cases])
    assert cmg[edema].mean() > 2 * cmg[~edema].mean()  # edema travels with cardiomegaly
