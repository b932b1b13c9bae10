"""The leaderboard: a markdown table, a CSV and a PNG, regenerated from a suite's results files."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ResultsError
from ..records.results import EvalResults
from ..utils.io import write_text_atomic

#: Context only, never mixed into our rows: CheXpert paper (Irvin et al. 2019), validation AUROCs.
LITERATURE = {
    "source": "CheXpert paper (Irvin et al., AAAI 2019), best model, CheXpert validation set",
    "auroc": {
        "Atelectasis": 0.858,
        "Cardiomegaly": 0.854,
        "Consolidation": 0.939,
        "Edema": 0.941,
        "Pleural Effusion": 0.936,
    },
}


def load_results(folder: str | Path) -> list[EvalResults]:
    """Every results file of a suite's folder (``record.source`` is its file), in file-name order;
    a :class:`ResultsError` naming the file and the key for one that is not a results file, or
    when the files disagree on the findings."""
    docs = [EvalResults.read(p) for p in sorted(Path(folder).glob("*.json"))]
    findings = {tuple(d.findings) for d in docs}
    if len(findings) > 1:
        raise ResultsError(
            f"{folder}: results with different finding sets cannot share a leaderboard: {sorted(findings)}"
        )
    return docs


def rows(docs: list[EvalResults]) -> list[dict[str, Any]]:
    """One leaderboard row per evaluated path (a LanIC model gives three: classifier, ensemble
    path, top-patterns path; a baseline gives one)."""
    out = []
    for d in docs:
        acc = d.metrics.accuracy
        if not acc:
            continue
        mid = d.model.id
        for path, block in acc.items():
            if d.model.kind == "lanic":
                label = {
                    "classifier": "classifier (MLP, black box)",
                    "ensemble_path": "LanIC ensemble path (all members)",
                }.get(path, path.replace("_", " "))
                name = f"{label} [{mid}]"
            else:
                name = mid
            au = block.auroc
            r = {
                "model": name,
                "kind": d.model.kind,
                "macro_auroc": au.macro,
                "ci_low": au.macro_ci[0],
                "ci_high": au.macro_ci[1],
                **{f: au.per_finding[i] for i, f in enumerate(d.findings)},
                "macro_auprc": _nanmean(block.auprc),
                "macro_f1": _nanmean(block.f1),
                "macro_ece": _nanmean(block.ece),
                "dataset": d.dataset.label(),
            }
            if d.model.kind == "lanic" and path == "ensemble_path":
                m = d.metrics
                r["ms_median"] = m.monosemanticity["ms"]["median"]
                r["patterns_for_90pct"] = m.explanations["patterns_for_90pct"]["median"]
                r["logit_r2"] = _nanmean(m.fidelity["logit_r2"])
            out.append(r)
    return sorted(out, key=lambda r: -np.nan_to_num(r["macro_auroc"], nan=-1))


def check_rows(docs: list[EvalResults]) -> list[dict[str, Any]]:
    """One row per LanIC model evaluated by a suite that makes no accuracy claims (real-fixtures):
    what it checks is that the whole path runs on the data and that the explanations add up."""
    out = []
    for d in docs:
        m = d.metrics
        if m.accuracy or d.model.kind != "lanic" or m.fidelity is None:
            continue
        fvu = m.fidelity["fvu"]
        out.append(
            {
                "model": d.model.id,
                "dataset": d.dataset.label(),
                "completeness_error_max": m.explanations["completeness_error_max"],
                "patterns_for_90pct": m.explanations["patterns_for_90pct"]["median"],
                "logit_r2": _nanmean(m.fidelity["logit_r2"]),
                "fvu_full_level": fvu[max(fvu, key=int)],
                "ms_median": m.monosemanticity["ms"]["median"],
                "bank_measured_on": m.monosemanticity.get("bank_measured_on") or "unknown data",
            }
        )
    return out


CHECK_COLUMNS = (
    "model",
    "completeness_error_max",
    "patterns_for_90pct",
    "logit_r2",
    "fvu_full_level",
    "ms_median",
    "dataset",
)


def _nanmean(v) -> float:
    a = np.array(v, dtype=float)
    return float(np.nanmean(a)) if np.any(~np.isnan(a)) else float("nan")


def _f(v, nd: int = 3) -> str:
    return "-" if v is None or v != v else f"{v:.{nd}f}"


def markdown(
    rs: list[dict[str, Any]], findings: list[str], suite: str, checks: list[dict[str, Any]] = ()
) -> str:
    lines = [f"# Leaderboard: suite `{suite}`", ""]
    if checks:
        lines += [
            f"Checked on {'; '.join(sorted({c['dataset'] for c in checks}))}. This suite makes no "
            "accuracy claims: it checks that the whole path runs on these images and that every "
            "explanation adds up (bias + pattern contributions + error = the classifier's logit; "
            "completeness error is the largest gap over all images and findings). Logit R² (ensemble "
            "vs classifier) and full-level FVU are measured on the same images; MS is the median of "
            "the model's pattern bank, measured where the bank was built: "
            + "; ".join(sorted({str(c["bank_measured_on"]) for c in checks}))
            + ".",
            "",
            "| model | completeness error (max) | patterns for 90% (median) | logit R² | FVU | MS |",
            "|---|---|---|---|---|---|",
        ]
        for c in checks:
            lines.append(
                f"| {c['model']} | {c['completeness_error_max']:.1e} | {_f(c['patterns_for_90pct'], 0)} | "
                f"{_f(c['logit_r2'])} | {_f(c['fvu_full_level'])} | {_f(c['ms_median'])} |"
            )
        lines.append("")
    if not rs and checks:
        return "\n".join(lines)
    datasets = sorted({r["dataset"] for r in rs})
    lines += [
        f"Measured on {'; '.join(datasets) or 'no data'}. AUROC with bootstrap 95% CI (macro over findings); "
        "AUPRC, F1 (threshold chosen on the validate split) and ECE are macro means. MS, patterns for 90% "
        "of the evidence and logit R² (ensemble vs classifier) are given on the ensemble-path row.",
        "",
        "| model | macro AUROC [95% CI] | "
        + " | ".join(findings)
        + " | AUPRC | F1 | ECE | MS | patterns 90% | R² |",
        "|---" * (len(findings) + 8) + "|",
    ]
    for r in rs:
        cells = [
            r["model"],
            f"{_f(r['macro_auroc'])} [{_f(r['ci_low'])}, {_f(r['ci_high'])}]",
            *[_f(r[f]) for f in findings],
            _f(r["macro_auprc"]),
            _f(r["macro_f1"]),
            _f(r["macro_ece"]),
            _f(r.get("ms_median")),
            _f(r.get("patterns_for_90pct"), 0),
            _f(r.get("logit_r2")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lit = LITERATURE
    lines += [
        "",
        f"Context (literature, not our measurement, not comparable data): {lit['source']}.",
        "",
        "| finding | " + " | ".join(lit["auroc"]) + " |",
        "|---" * (len(lit["auroc"]) + 1) + "|",
        "| AUROC | " + " | ".join(f"{v:.3f}" for v in lit["auroc"].values()) + " |",
        "",
    ]
    return "\n".join(lines)


def write_leaderboard(out: str | Path, suite: str, render=None) -> dict[str, str]:
    """Regenerate ``<out>/leaderboard/<suite>.{md,csv,png}`` from ``<out>/results/<suite>/*.json``.
    ``render(docs) -> str``: a suite's own markdown (the counterfactual suite passes its table);
    default: the accuracy leaderboard."""
    out = Path(out)
    docs = load_results(out / "results" / suite)
    findings = docs[0].findings if docs else []
    rs, checks = rows(docs), check_rows(docs)
    dest = out / "leaderboard"
    dest.mkdir(parents=True, exist_ok=True)
    text = render(docs) if render is not None else markdown(rs, findings, suite, checks)
    md = write_text_atomic(dest / f"{suite}.md", text)
    buf = io.StringIO()
    cols = [
        "model",
        "kind",
        "macro_auroc",
        "ci_low",
        "ci_high",
        *findings,
        "macro_auprc",
        "macro_f1",
        "macro_ece",
    ]
    cols += ["ms_median", "patterns_for_90pct", "logit_r2", "dataset"]
    if checks and not rs:  # a suite without accuracy: the CSV holds its checks
        cols, rs_csv = list(CHECK_COLUMNS), checks
    else:
        rs_csv = rs
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for r in rs_csv:
        w.writerow(r)
    cs = write_text_atomic(dest / f"{suite}.csv", buf.getvalue())
    png = dest / f"{suite}.png"
    if rs:
        plot(rs, png, suite)
    return {"markdown": str(md), "csv": str(cs), "png": str(png) if rs else ""}


def plot(rs: list[dict[str, Any]], path: Path, suite: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rs = list(reversed(rs))
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(rs) + 1.4))
    y = np.arange(len(rs))
    mac = np.array([r["macro_auroc"] for r in rs], dtype=float)
    lo = mac - np.array([r["ci_low"] for r in rs], dtype=float)
    hi = np.array([r["ci_high"] for r in rs], dtype=float) - mac
    colors = ["#1f77b4" if r["kind"] == "lanic" else "#999999" for r in rs]
    ax.barh(y, mac, xerr=[np.nan_to_num(lo), np.nan_to_num(hi)], color=colors, capsize=3)
    ax.set_yticks(y, [r["model"][:70] for r in rs], fontsize=8)
    finite = mac[np.isfinite(mac)]
    ax.set_xlim(max(0.0, (finite.min() if len(finite) else 0.5) - 0.08), 1.0)
    ax.set_xlabel("macro AUROC (test split, bootstrap 95% CI)")
    ax.set_title(f"lanic-hub leaderboard: {suite} (blue: LanIC model paths, grey: baselines)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
