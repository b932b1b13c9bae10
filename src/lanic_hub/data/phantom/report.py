"""Free-text reports from the ground truth, and a CheXpert-style labeller that reads them back.

The report is what a radiologist would dictate: it misses subtle findings, hedges, and is
sometimes wrong (``PhantomConfig`` sets the rates). Labels are then *derived from the text* by
``label_report``, exactly as CheXpert / NegBio labels are derived from MIMIC-CXR reports, so the
phantom labels carry report-like noise while the ground truth keeps the true state.
"""

from __future__ import annotations

import re

import numpy as np

from ...constants import CHEXPERT_LABELS, FINDINGS
from .case import FACTOR_OF_FINDING, Case, severity_band
from .config import PhantomConfig

POS, NEG, UNC, BLANK = 1.0, 0.0, -1.0, None

_SIZE = {"subtle": "minimal", "mild": "small", "moderate": "moderate", "severe": "large"}
_DEGREE = {"subtle": "minimal", "mild": "mild", "moderate": "moderate", "severe": "severe"}
_SIDE = {"right": "right", "left": "left", "bilateral": "bilateral"}

_POSITIVE: dict[str, list[str]] = {
    "Atelectasis": [
        "{deg} {side} basilar atelectasis.",
        "Plate-like atelectasis at the {side} lung base, {deg}.",
        "There is {deg} {side} lower lobe atelectasis.",
    ],
    "Cardiomegaly": [
        "The heart is {deg}ly enlarged.",
        "{deg} cardiomegaly.",
        "Cardiac silhouette is enlarged, {deg} cardiomegaly.",
    ],
    "Consolidation": [
        "{deg} consolidation in the {side} {lobe} lobe.",
        "Focal {side} {lobe} lobe consolidation, {deg}.",
        "There is a {deg} area of consolidation in the {side} {lobe} lung.",
    ],
    "Edema": [
        "{deg} pulmonary edema.",
        "Perihilar haziness consistent with {deg} pulmonary edema.",
        "{deg} interstitial edema with Kerley B lines.",
    ],
    "Pleural Effusion": [
        "{size} {side} pleural effusion.",
        "There is a {size} {side} pleural effusion.",
        "{size} {side} effusion blunting the costophrenic angle.",
    ],
}
_HEDGE = ["Possible {x}", "Cannot exclude {x}", "Findings may represent {x}", "Questionable {x}"]
_HEDGE_NAME = {
    "Atelectasis": "atelectasis",
    "Cardiomegaly": "cardiomegaly",
    "Consolidation": "consolidation",
    "Edema": "pulmonary edema",
    "Pleural Effusion": "pleural effusion",
}
_NEGATIVE: dict[str, list[str]] = {
    "Atelectasis": ["No atelectasis.", "No focal atelectasis is seen."],
    "Cardiomegaly": ["No cardiomegaly.", "Heart size is normal, no cardiomegaly."],
    "Consolidation": ["No focal consolidation.", "There is no consolidation."],
    "Edema": ["No pulmonary edema.", "There is no edema."],
    "Pleural Effusion": ["No pleural effusion.", "No pleural effusion is identified."],
}
_DEVICE_TEXT = {
    "endotracheal_tube": "Endotracheal tube terminates above the carina.",
    "nasogastric_tube": "Enteric tube courses below the diaphragm.",
    "central_venous_catheter": "{side} central venous catheter tip in the SVC.",
    "chest_tube": "{side} chest tube in place.",
    "pacemaker": "{side}-sided pacemaker with leads in the heart.",
    "sternal_wires": "Median sternotomy wires are intact.",
}

# --- the labeller: mentions, negation and uncertainty cues, sentence by sentence ---
_MENTION = {
    "Atelectasis": r"atelectasis",
    "Cardiomegaly": r"cardiomegaly|heart is \w+ enlarged|cardiac silhouette is enlarged",
    "Consolidation": r"consolidation",
    "Edema": r"edema",
    "Pleural Effusion": r"effusion",
    "Support Devices": r"tube|catheter|pacemaker|sternotomy wires",
    "Pneumothorax": r"pneumothorax",
}
_NEGATION = re.compile(r"^(no|there is no|without)\b|\bno (?:\w+ ){0,2}$|, no ", re.I)
_UNCERTAIN = re.compile(r"\b(possible|cannot exclude|may represent|questionable)\b", re.I)


def label_report(report: str) -> dict[str, float | None]:
    """CheXpert-style labels (1, 0, -1, None) for all 14 observations, read from the text.

    A positive mention anywhere wins over an uncertain one, which wins over a negation; an
    observation never mentioned is blank. 'No Finding' is 1 when no finding is positive or
    uncertain (support devices allowed), as in the CheXpert labeller.
    """
    labels: dict[str, float | None] = dict.fromkeys(CHEXPERT_LABELS)
    for sentence in re.split(r"(?<=\.)\s+|\n+", report):
        s = sentence.strip()
        if not s or s.endswith(":"):
            continue
        for label, pat in _MENTION.items():
            m = re.search(pat, s, re.I)
            if not m:
                continue
            if _UNCERTAIN.search(s):
                v = UNC
            elif _NEGATION.search(s[: m.start()]) or s.lower().startswith("no "):
                v = NEG
            else:
                v = POS
            old = labels[label]
            if old is None or (v == POS) or (v == UNC and old == NEG):
                labels[label] = v
    pathologies = [c for c in CHEXPERT_LABELS if c not in ("No Finding", "Support Devices")]
    labels["No Finding"] = None if any(labels[c] in (POS, UNC) for c in pathologies) else POS
    return labels


def reported_states(case: Case, cfg: PhantomConfig, rng: np.random.Generator) -> dict[str, float | None]:
    """What the report will say about each finding: POS, NEG, UNC or BLANK (not mentioned)."""
    out: dict[str, float | None] = {}
    for finding in FINDINGS:
        f = case.findings[FACTOR_OF_FINDING[finding]]
        seen = f.present
        if seen and rng.random() < cfg.subtle_miss_rate * max(0.0, 1.0 - f.severity / 0.5):
            seen = False
        if rng.random() < cfg.label_noise:
            seen = not seen
        hedge, omit = rng.random(), rng.random()
        if seen:
            out[finding] = UNC if hedge < cfg.uncertainty_rate else POS
        else:
            out[finding] = BLANK if omit < cfg.omit_negative_rate else NEG
    return out


def write_report(case: Case, states: dict[str, float | None], rng: np.random.Generator) -> str:
    """FINDINGS and IMPRESSION sections stating ``states``, with varied phrasing."""
    tech = []
    if case.view == "AP" or case.portable_marker:
        tech.append("Portable AP upright view of the chest.")
    else:
        tech.append("PA and lateral views of the chest.")
    if case.factor_present("rotation"):
        tech.append("The patient is rotated.")
    if case.factor_present("underexposure"):
        tech.append("Underpenetrated film limits evaluation.")
    elif case.factor_present("overexposure"):
        tech.append("Overpenetrated technique.")
    body, impression = [], []
    for device, side in sorted(case.devices.items()):
        body.append(_DEVICE_TEXT[device].format(side=(side or "right").capitalize()))
    for finding in FINDINGS:
        st = states[finding]
        f = case.findings[FACTOR_OF_FINDING[finding]]
        band = severity_band(f.severity) or str(rng.choice(["subtle", "mild"]))
        side = _SIDE.get(f.side, str(rng.choice(["right", "left"])))
        lobe = f.lobe or "lower"
        if st == POS:
            text = str(rng.choice(_POSITIVE[finding])).format(
                deg=_DEGREE[band], size=_SIZE[band], side=side, lobe=lobe
            )
            text = text[0].upper() + text[1:]
            body.append(text)
            impression.append(text)
        elif st == UNC:
            text = str(rng.choice(_HEDGE)).format(x=_HEDGE_NAME[finding]) + "."
            body.append(text)
            impression.append(text)
        elif st == NEG:
            body.append(str(rng.choice(_NEGATIVE[finding])))
    if rng.random() < 0.5:
        body.append("No pneumothorax.")
    if not impression:
        impression.append(
            str(rng.choice(["No acute cardiopulmonary process.", "No acute cardiopulmonary abnormality."]))
        )
    return "FINDINGS: " + " ".join(tech + body) + "\n\nIMPRESSION: " + " ".join(impression)
