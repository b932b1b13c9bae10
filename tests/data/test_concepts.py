"""The report concept extractor: real-style sentences, negation, uncertainty, side, devices, and
phantom reports read back against their ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from lanic_hub.data.concepts import CONCEPTS, ConceptExtractor
from lanic_hub.data.phantom import DEVICE_FACTORS, PhantomConfig
from lanic_hub.data.phantom.report import reported_states, write_report
from lanic_hub.data.phantom.sampling import sample_case


@pytest.fixture(scope="module")
def extractor() -> ConceptExtractor:
    return ConceptExtractor()


def _states(x: ConceptExtractor, report: str) -> dict[str, tuple[str, str | None, str | None]]:
    ms = x.mentions(report)
    assert ms is not None
    return {m.concept: (m.status, m.side, m.severity) for m in ms}


@pytest.mark.parametrize(
    ("sentence", "concept", "status", "side", "severity"),
    [
        ("Small right pleural effusion.", "pleural_effusion", "positive", "right", "mild"),
        ("No pleural effusion or pneumothorax.", "pleural_effusion", "negated", None, None),
        ("There is no evidence of consolidation.", "consolidation", "negated", None, None),
        ("Possible left lower lobe consolidation.", "consolidation", "uncertain", "left", None),
        ("Pleural effusion cannot be excluded.", "pleural_effusion", "uncertain", None, None),
        ("Bibasilar atelectasis.", "atelectasis", "positive", "bilateral", None),
        ("Moderate cardiomegaly.", "cardiomegaly", "positive", None, "moderate"),
        ("Severe cardiomegaly with mild pulmonary edema.", "edema", "positive", None, "mild"),
        ("Interval removal of the left chest tube.", "chest_tube", "negated", "left", None),
        ("Left pigtail catheter in the pleural space.", "chest_tube", "positive", "left", None),
        ("ET tube terminates 4 cm above the carina.", "endotracheal_tube", "positive", None, None),
        ("NG tube tip in the stomach.", "nasogastric_tube", "positive", None, None),
        ("Dobhoff tube courses below the diaphragm.", "nasogastric_tube", "positive", None, None),
        ("Right IJ line terminates in the SVC.", "central_venous_catheter", "positive", "right", None),
        (
            "Left PICC line tip at the cavoatrial junction.",
            "central_venous_catheter",
            "positive",
            "left",
            None,
        ),
        ("Dual-chamber pacemaker with leads in the right atrium.", "pacemaker", "positive", "right", None),
        ("Median sternotomy wires are intact.", "sternal_wires", "positive", None, None),
        ("The lung bases are not included on this film.", "collimation", "positive", None, None),
        ("The patient is rotated to the right.", "rotation", "positive", "right", None),
        ("Portable AP upright view of the chest.", "portable_marker", "positive", None, None),
        ("Underpenetrated film limits evaluation.", "underexposure", "positive", None, None),
    ],
)
def test_real_style_sentences(extractor, sentence, concept, status, side, severity):
    got = _states(extractor, sentence)
    assert got[concept] == (status, side, severity), got


def test_report_table_precedence_and_unusable_rows(extractor):
    reports = [
        "FINDINGS: No pleural effusion. IMPRESSION: Small left pleural effusion.",  # positive wins
        "Possible edema. No edema.",  # uncertain wins over negated
        "",
        None,
        "Keine akuten kardiopulmonalen Befunde.",  # another language: nothing recognised
        "PA and lateral views of the chest. No acute cardiopulmonary process.",  # readable, no concept
    ]
    said = []
    t = extractor.table(reports, log=said.append)
    assert t.column("pleural_effusion")[0] == 1
    assert t.column("edema")[1] == -1
    assert np.isnan(t.values[2:5]).all()
    assert (t.values[5] == 0).all()
    assert t.usable.tolist() == [True, True, False, False, False, True]
    assert said and "3 of 6 rows had no usable report" in said[0]
    assert t.positive()[0, t.concepts.index("pleural_effusion")]
    assert not t.positive()[1].any()


def test_every_device_and_technique_concept_has_a_phrase_that_is_read(extractor):
    keys = {c.key for c in CONCEPTS}
    assert set(DEVICE_FACTORS) <= keys
    for c in CONCEPTS:
        for phrase in c.phrases:
            words = " ".join(w.rstrip("?").split("|")[0] for w in phrase.split())
            ms = extractor.mentions(f"There is {words} seen.") or []
            assert c.key in {m.concept for m in ms}, (c.key, phrase)


def test_phantom_reports_read_back_their_ground_truth(extractor):
    """Devices and technique remarks are always written when present, so reading the phantom
    reports back must give the ground truth exactly; findings are reported with noise, so only a
    statement's agreement with the report-derived CheXpert label is checked."""
    cfg = PhantomConfig()
    cases, reports = [], []
    for i in range(300):
        case = sample_case(cfg, np.random.default_rng((3, i, 1)), "train")
        rr = np.random.default_rng((3, i, 2))
        cases.append(case)
        reports.append(write_report(case, reported_states(case, cfg, rr), rr))
    t = extractor.table(reports)
    assert t.usable.all()
    for f in (*DEVICE_FACTORS, "rotation", "underexposure", "overexposure"):
        truth = np.array([c.factor_present(f) for c in cases])
        assert truth.any(), f
        np.testing.assert_array_equal(t.column(f) == 1, truth, err_msg=f)
    portable = np.array([c.view == "AP" or c.portable_marker for c in cases])
    np.testing.assert_array_equal(t.column("portable_marker") == 1, portable)
