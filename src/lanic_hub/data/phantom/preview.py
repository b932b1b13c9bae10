"""A labelled preview grid of phantoms and a prevalence summary: what a person checks first."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ...constants import FINDINGS
from .case import ALL_FACTORS, Case, severity_band
from .generate import PhantomStudy

_SHORT = {
    "atelectasis": "ATEL",
    "cardiomegaly": "CMG",
    "consolidation": "CONS",
    "edema": "EDEMA",
    "pleural_effusion": "EFF",
    "pacemaker": "PACER",
    "endotracheal_tube": "ETT",
    "central_venous_catheter": "CVC",
    "nasogastric_tube": "NGT",
    "chest_tube": "CHEST TUBE",
    "sternal_wires": "STERNAL",
    "laterality_marker": "marker",
    "portable_marker": "PORTABLE",
    "rotation": "rotated",
    "underexposure": "under-exp",
    "overexposure": "over-exp",
    "collimation": "collim/crop",
}


def factor_tags(case: Case) -> list[str]:
    """Short labels for every factor present, with severity band and side for findings."""
    tags = []
    for name in ALL_FACTORS:
        if not case.factor_present(name):
            continue
        t = _SHORT[name]
        if name in case.findings:
            f = case.findings[name]
            t += f" {severity_band(f.severity)}"
            if f.side and f.side != "bilateral":
                t += f" {f.side[0].upper()}"
            if name == "cardiomegaly":
                t += f" CTR {case.ctr:.2f}"
        tags.append(t)
    return tags or ["normal"]


def preview_grid(studies: Sequence[PhantomStudy], path: str | Path, cols: int = 4, tile: int = 256) -> Path:
    """Write a PNG grid: each phantom with its ground-truth factors written under it."""
    font = ImageFont.load_default(size=11)
    line_h, lines = 13, 4
    rows = (len(studies) + cols - 1) // cols
    canvas = Image.new("L", (cols * tile, rows * (tile + line_h * lines + 6)), 255)
    draw = ImageDraw.Draw(canvas)
    for k, st in enumerate(studies):
        x0, y0 = (k % cols) * tile, (k // cols) * (tile + line_h * lines + 6)
        canvas.paste(Image.fromarray(st.image).resize((tile - 6, tile - 6), Image.BILINEAR), (x0 + 3, y0 + 3))
        text, line = [], ""
        for t in factor_tags(st.case):
            if len(line) + len(t) + 2 > 38:
                text.append(line)
                line = ""
            line = f"{line}, {t}" if line else t
        text.append(line)
        for j, ln in enumerate(text[:lines]):
            draw.text((x0 + 4, y0 + tile + j * line_h), ln, fill=0, font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def showcase(studies: Sequence[PhantomStudy], min_severity: float = 0.5) -> list[PhantomStudy]:
    """One study per factor (findings at ``min_severity`` or more), in factor order, no repeats."""
    picked: list[PhantomStudy] = []
    for name in ALL_FACTORS:
        for st in studies:
            if st in picked or not st.case.factor_present(name):
                continue
            if name in st.case.findings and st.case.findings[name].severity < min_severity:
                continue
            picked.append(st)
            break
    return picked


def label_summary(studies: Sequence[PhantomStudy]) -> str:
    """Markdown: ground-truth prevalence of every factor by split, and report-label counts."""
    n = len(studies)
    splits = sorted({s.plan.split for s in studies})
    head = "| factor | all | " + " | ".join(splits) + " |"
    out = [
        f"# Phantom label summary (n = {n})",
        "",
        "## Ground-truth prevalence",
        "",
        head,
        "|" + "---|" * (len(splits) + 2),
    ]
    for name in ALL_FACTORS:
        cells = [f"{np.mean([s.case.factor_present(name) for s in studies]):.3f}"]
        for sp in splits:
            sub = [s for s in studies if s.plan.split == sp]
            cells.append(f"{np.mean([s.case.factor_present(name) for s in sub]):.3f}" if sub else "-")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    out += [
        "",
        "## Report-derived labels (CheXpert convention)",
        "",
        "| label | 1 | 0 | -1 | blank | agrees with truth (definite labels) |",
        "|---|---|---|---|---|---|",
    ]
    for c in [*FINDINGS, "Support Devices", "No Finding"]:
        vals = [s.labels[c] for s in studies]
        cnt = {k: sum(v == k for v in vals) for k in (1.0, 0.0, -1.0)}
        blank = sum(v is None for v in vals)
        agree = "-"
        if c in FINDINGS:
            from .case import FACTOR_OF_FINDING

            pairs = [
                (s.labels[c], s.case.findings[FACTOR_OF_FINDING[c]].present)
                for s in studies
                if s.labels[c] in (0.0, 1.0)
            ]
            agree = f"{np.mean([(v == 1.0) == t for v, t in pairs]):.3f}" if pairs else "-"
        out.append(f"| {c} | {cnt[1.0]} | {cnt[0.0]} | {cnt[-1.0]} | {blank} | {agree} |")
    return "\n".join(out) + "\n"
