"""Draw a :class:`Case`: realistic prevalences and co-occurrence through latent patient states.

Latent states (heart failure, ICU stay, pneumonia, prior cardiac surgery) drive the findings,
devices and artifacts together, so that edema travels with cardiomegaly and effusion, lines and
tubes with portable films, and so on, as in MIMIC-CXR.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .case import DEVICE_FACTORS, FACTOR_OF_FINDING, Anatomy, Case, Finding
from .config import PhantomConfig, ShortcutSpec


def _severity(rng: np.random.Generator, mix: tuple[float, ...]) -> float:
    band = rng.choice(4, p=np.asarray(mix))
    return float((band + rng.uniform(0.02, 1.0)) / 4.0)


def _side(rng: np.random.Generator, p_bilateral: float, p_right: float = 0.55) -> str:
    u = rng.random()
    if u < p_bilateral:
        return "bilateral"
    return "right" if rng.random() < p_right else "left"


def sample_anatomy(rng: np.random.Generator, icu: bool) -> Anatomy:
    sex = "F" if rng.random() < 0.5 else "M"
    return Anatomy(
        habitus=float(rng.beta(2, 2)),
        inspiration=float(rng.beta(2, 3) if icu else rng.beta(3, 2)),
        sex=sex,
        age=int(np.clip(rng.normal(62 if icu else 55, 16), 18, 95)),
        ctr_baseline=float(np.clip(rng.normal(0.44, 0.03), 0.36, 0.495)),
        breast_shadows=bool(sex == "F" and rng.random() < 0.8),
        gastric_bubble=bool(rng.random() < 0.6),
    )


def sample_case(cfg: PhantomConfig, rng: np.random.Generator, split: str) -> Case:
    """One case. ``split`` matters only for shortcut couplings."""
    s = cfg.prevalence_scale

    def p(x: float) -> float:
        return min(1.0, x * s)

    icu = rng.random() < 0.30
    chf = rng.random() < 0.16
    surgery = rng.random() < 0.07
    pneumonia = rng.random() < (0.10 if icu else 0.05)
    anatomy = sample_anatomy(rng, icu)

    present = {
        "cardiomegaly": rng.random() < p((0.70 if chf else 0.07) + (0.2 if surgery else 0.0)),
        "edema": rng.random() < p((0.55 if chf else 0.03) + (0.05 if icu else 0.0)),
    }
    present["pleural_effusion"] = rng.random() < p(
        (0.50 if chf else 0.10) + (0.08 if icu else 0.0) + (0.30 if pneumonia else 0.0)
    )
    present["consolidation"] = rng.random() < p(0.85 if pneumonia else 0.02)
    present["atelectasis"] = rng.random() < p(
        0.13
        + (0.17 if icu else 0.0)
        + (0.25 if present["pleural_effusion"] else 0.0)
        + (0.15 if surgery else 0.0)
    )

    findings: dict[str, Finding] = {}
    eff_side = _side(rng, 0.6 if chf else 0.15)
    for name in ("cardiomegaly", "edema", "pleural_effusion", "consolidation", "atelectasis"):
        sev = _severity(rng, cfg.severity_mix)
        side, lobe = "", ""
        if name == "pleural_effusion":
            side = eff_side
        elif name == "edema":
            side = "bilateral"
        elif name == "atelectasis":
            same = present["pleural_effusion"] and rng.random() < 0.7
            side = eff_side if same else _side(rng, 0.25)
        elif name == "consolidation":
            side = _side(rng, 0.1)
            lobe = str(rng.choice(["upper", "middle", "lower"], p=[0.3, 0.2, 0.5]))
        findings[name] = Finding(True, sev, side, lobe) if present[name] else Finding()

    devices: dict[str, str] = {}
    ett = rng.random() < (0.35 if icu else 0.005)
    if ett:
        devices["endotracheal_tube"] = ""
    if rng.random() < (0.5 if icu else 0.03):
        devices["central_venous_catheter"] = "right" if rng.random() < 0.7 else "left"
    if rng.random() < (0.75 if ett else (0.15 if icu else 0.01)):
        devices["nasogastric_tube"] = ""
    if rng.random() < 0.02 + (0.10 if present["pleural_effusion"] else 0) + (0.05 if surgery else 0):
        e_side = eff_side if eff_side != "bilateral" else "right"
        devices["chest_tube"] = e_side if present["pleural_effusion"] else _side(rng, 0.0)
    if rng.random() < 0.03 + (0.12 if chf else 0.0) + (0.10 if surgery else 0.0):
        devices["pacemaker"] = "left" if rng.random() < 0.85 else "right"
    if rng.random() < (0.9 if surgery else 0.01):
        devices["sternal_wires"] = ""

    marker = ("L" if rng.random() < 0.6 else "R") if rng.random() < 0.75 else ""
    case = Case(
        anatomy=anatomy,
        findings=findings,
        devices=devices,
        marker=marker,
        portable_marker=bool(rng.random() < (0.85 if icu else 0.05)),
        rotation=float(np.clip(rng.normal(0, 0.25), -1, 1)),
        exposure=float(np.clip(rng.normal(0, 0.25), -1, 1)),
        collimation=bool(rng.random() < 0.12),
        view="AP" if (icu or rng.random() < 0.1) else "PA",
    )
    for spec in cfg.shortcuts:
        if split in spec.splits and rng.random() < spec.strength:
            case = _couple(case, spec, rng)
    return case


def _couple(case: Case, spec: ShortcutSpec, rng: np.random.Generator) -> Case:
    """Set ``spec.factor`` to equal the presence of ``spec.finding`` (its absence when ``anti``)."""
    on = case.findings[FACTOR_OF_FINDING[spec.finding]].present != spec.anti
    coupled = (*case.shortcut_coupled, spec.factor)
    f = spec.factor
    if f in DEVICE_FACTORS:
        devices = dict(case.devices)
        if on:
            side = {"pacemaker": "left", "central_venous_catheter": "right", "chest_tube": "right"}
            finding = case.findings[FACTOR_OF_FINDING[spec.finding]]
            s = finding.side if finding.side in ("left", "right") else side.get(f, "")
            devices.setdefault(f, s if f in side else "")
        else:
            devices.pop(f, None)
        return replace(case, devices=devices, shortcut_coupled=coupled)
    values = {
        "laterality_marker": {"marker": (case.marker or "L") if on else ""},
        "portable_marker": {"portable_marker": on},
        "rotation": {"rotation": float(rng.choice([-1, 1]) * rng.uniform(0.5, 0.9)) if on else 0.0},
        "underexposure": {"exposure": -float(rng.uniform(0.5, 0.9)) if on else 0.0},
        "overexposure": {"exposure": float(rng.uniform(0.5, 0.9)) if on else 0.0},
        "collimation": {"collimation": on},
    }[f]
    return replace(case, shortcut_coupled=coupled, **values)
