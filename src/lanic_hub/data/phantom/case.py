"""The ground truth of one phantom radiograph: what is in it, how severe, on which side.

A :class:`Case` is sampled first (prevalences and co-occurrence live here), then rendered
(``render.py``) and described in a report (``report.py``). Keeping the three apart is what lets
a test switch one factor off and re-render everything else identically.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from ...constants import FINDINGS

#: Ground-truth factor names, in a fixed order. Findings first, then devices, then artifacts.
FINDING_FACTORS: tuple[str, ...] = (
    "atelectasis",
    "cardiomegaly",
    "consolidation",
    "edema",
    "pleural_effusion",
)
DEVICE_FACTORS: tuple[str, ...] = (
    "pacemaker",
    "endotracheal_tube",
    "central_venous_catheter",
    "nasogastric_tube",
    "chest_tube",
    "sternal_wires",
)
ARTIFACT_FACTORS: tuple[str, ...] = (
    "laterality_marker",
    "portable_marker",
    "rotation",
    "underexposure",
    "overexposure",
    "collimation",
)
ALL_FACTORS: tuple[str, ...] = FINDING_FACTORS + DEVICE_FACTORS + ARTIFACT_FACTORS
FACTOR_OF_FINDING: dict[str, str] = dict(zip(FINDINGS, FINDING_FACTORS, strict=True))

#: Severity bands; ``severity_band(s)`` names the band a severity in (0, 1] falls in.
SEVERITY_BANDS: tuple[str, ...] = ("subtle", "mild", "moderate", "severe")
SIDES: tuple[str, ...] = ("right", "left", "bilateral")
ROTATION_THRESHOLD = 0.35
EXPOSURE_THRESHOLD = 0.35


def severity_band(severity: float) -> str:
    """'subtle' < 0.25 <= 'mild' < 0.5 <= 'moderate' < 0.75 <= 'severe'; '' when absent."""
    if severity <= 0:
        return ""
    return SEVERITY_BANDS[min(int(severity * 4), 3)]


@dataclass(frozen=True)
class Finding:
    """One finding's truth. ``side`` is the patient's side ('right' appears on the image left)."""

    present: bool = False
    severity: float = 0.0
    side: str = ""
    lobe: str = ""


@dataclass(frozen=True)
class Anatomy:
    """Patient anatomy: continuous, never a 'finding'. All values are dimensionless."""

    habitus: float = 0.5  # 0 thin .. 1 large
    inspiration: float = 0.5  # 0 poor .. 1 deep
    sex: str = "M"
    age: int = 60
    ctr_baseline: float = 0.45  # cardiothoracic ratio the heart has without cardiomegaly
    breast_shadows: bool = False
    gastric_bubble: bool = True


@dataclass(frozen=True)
class Case:
    """Everything true about one image. ``factor_present`` reads any factor by name."""

    anatomy: Anatomy
    findings: dict[str, Finding]  # keys: FINDING_FACTORS
    devices: dict[str, str]  # present device -> side ('' where side does not apply)
    marker: str = ""  # laterality marker letter ('L' / 'R') or ''
    portable_marker: bool = False
    rotation: float = 0.0  # -1 .. 1; |r| > ROTATION_THRESHOLD counts as rotated
    exposure: float = 0.0  # -1 under .. 1 over; |e| > EXPOSURE_THRESHOLD counts
    collimation: bool = False
    view: str = "PA"
    shortcut_coupled: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ctr(self) -> float:
        """The cardiothoracic ratio drawn: enlarged by cardiomegaly's severity."""
        f = self.findings["cardiomegaly"]
        if not f.present:
            return self.anatomy.ctr_baseline
        return 0.51 + 0.17 * f.severity

    def factor_present(self, name: str) -> bool:
        if name in self.findings:
            return self.findings[name].present
        if name in DEVICE_FACTORS:
            return name in self.devices
        return {
            "laterality_marker": bool(self.marker),
            "portable_marker": self.portable_marker,
            "rotation": abs(self.rotation) > ROTATION_THRESHOLD,
            "underexposure": self.exposure < -EXPOSURE_THRESHOLD,
            "overexposure": self.exposure > EXPOSURE_THRESHOLD,
            "collimation": self.collimation,
        }[name]

    def without(self, name: str) -> Case:
        """The same case with one factor switched off (a control image for that factor)."""
        if name in self.findings:
            return replace(self, findings={**self.findings, name: Finding()})
        if name in DEVICE_FACTORS:
            return replace(self, devices={k: v for k, v in self.devices.items() if k != name})
        off: dict[str, Any] = {
            "laterality_marker": {"marker": ""},
            "portable_marker": {"portable_marker": False},
            "rotation": {"rotation": 0.0},
            "underexposure": {"exposure": 0.0},
            "overexposure": {"exposure": 0.0},
            "collimation": {"collimation": False},
        }
        if name not in off:
            raise KeyError(f"unknown phantom factor {name!r}; known: {ALL_FACTORS}")
        return replace(self, **off[name])

    def ground_truth(self) -> dict[str, Any]:
        """Flat ``gt_*`` columns: presence of every factor, plus severities, sides and anatomy."""
        out: dict[str, Any] = {}
        for name in ALL_FACTORS:
            out[f"gt_{name}"] = int(self.factor_present(name))
        for name, f in self.findings.items():
            out[f"gt_{name}_severity"] = round(float(f.severity), 4)
            out[f"gt_{name}_band"] = severity_band(f.severity) if f.present else ""
            out[f"gt_{name}_side"] = f.side
        out["gt_consolidation_lobe"] = self.findings["consolidation"].lobe
        out["gt_ctr"] = round(float(self.ctr), 4)
        out["gt_rotation_value"] = round(float(self.rotation), 4)
        out["gt_exposure_value"] = round(float(self.exposure), 4)
        out["gt_marker_letter"] = self.marker
        out["gt_chest_tube_side"] = self.devices.get("chest_tube", "")
        out["gt_pacemaker_side"] = self.devices.get("pacemaker", "")
        for f in fields(Anatomy):
            out[f"gt_anatomy_{f.name}"] = getattr(self.anatomy, f.name)
        out["gt_shortcut_coupled"] = ",".join(self.shortcut_coupled)
        return out
