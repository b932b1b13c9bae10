"""What the demo draws: the two waterfalls of a finding's logit, the pattern cards, and the page's
banners and notes (plain functions of explanation records, no Gradio)."""

from __future__ import annotations

from ..patterns.bank import pattern_label
from ..patterns.gallery import thumbnail_strip
from ..patterns.grounding import SENTENCE_FIT

NOTICE = (
    "**Research use only. Not a medical device.** lanic-hub is research software: do not use it to "
    "diagnose, treat or triage patients. MIMIC-CXR and CheXpert images are never shown here."
)
CATEGORY_COLOURS = {
    "cardiac": "#d62728",
    "pulmonary": "#1f77b4",
    "pleural": "#17becf",
    "structural": "#8c564b",
    "device": "#ff7f0e",
    "artifact": "#7f7f7f",
}
#: Colour of a named concept's bar.
CONCEPT_COLOUR = "#2ca02c"
NIH_ATTRIBUTION = (
    "NIH ChestX-ray14 images: provided by the NIH Clinical Center "
    "(https://nihcc.app.box.com/v/ChestXray-NIHCC); Wang et al., ChestX-ray8, IEEE CVPR 2017."
)
UNNAMED_COLOURS = {"unnamed": "#999999", "reference": "#cccccc", "residual": "#e0e0e0"}
UNNAMED_LABELS = {
    "unnamed": "unnamed (no support for a name)",
    "reference": "reference (a film naming nothing)",
    "residual": "residual (beyond the concepts)",
}


def _waterfall(ax, items, logit: float, title: str) -> None:
    start = 0.0
    for y, (_, v, colour) in enumerate(items):
        ax.barh(y, v, left=start, color=colour, edgecolor="black", linewidth=0.4)
        start += v
    ax.axvline(logit, color="black", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(items)), [i[0][:48] for i in items], fontsize=8)
    ax.invert_yaxis()
    ax.set_title(title, fontsize=9)


def contribution_chart(f, top: int = 10):
    """Two waterfalls of one finding's logit, each ending at the logit. Above: what the
    explanation asserts (baseline, named concepts, the unnamed parts, the error). Below: the level
    under it (baseline, the top patterns coloured by category, the rest, the latents outside the
    bank and the error)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    concepts = [("baseline", f.bias, "#bbbbbb")]
    named = [c for c in f.concepts if c.name]
    concepts += [(c.name, c.contribution, CONCEPT_COLOUR) for c in named[:top]]
    if named[top:]:
        concepts.append(
            (f"{len(named) - top} other concepts", sum(c.contribution for c in named[top:]), "#dddddd")
        )
    concepts += [
        (UNNAMED_LABELS[c.kind], c.contribution, UNNAMED_COLOURS[c.kind]) for c in f.concepts if not c.name
    ]
    concepts.append(("not captured (error)", f.error, "#eeeeee"))

    shown = [p for p in f.patterns if not p.dense]
    items = [("baseline", f.bias, "#bbbbbb")]
    items += [
        (
            f"{p.name if p.named else 'unnamed'} (#{p.pattern})",
            p.contribution,
            CATEGORY_COLOURS.get(p.category, "#333") if p.named else "#999999",
        )
        for p in shown[:top]
    ]
    items += [
        (
            f"{max(len(shown) - top, 0)} smaller patterns",
            sum(p.contribution for p in shown[top:]),
            "#dddddd",
        ),
        (f"context ({sum(p.dense for p in f.patterns)} patterns on most images)", f.context, "#e8e8e8"),
        ("outside the bank", f.unbanked, "#eeeeee"),
        ("not captured (error)", f.error, "#eeeeee"),
    ]
    fig, (ax_c, ax_p) = plt.subplots(
        2,
        1,
        figsize=(7.5, 0.38 * (len(items) + len(concepts)) + 2.0),
        gridspec_kw={"height_ratios": [len(concepts), len(items)]},
    )
    _waterfall(
        ax_c,
        concepts,
        f.logit,
        f"Concepts: {f.named_share:.0%} of the evidence named (names from the reports)",
    )
    _waterfall(ax_p, items, f.logit, "Patterns, the level below (colours: category)")
    ax_p.set_xlabel(f"logit of {f.finding} (dashed line: {f.logit:+.2f}, probability {f.probability:.2f})")
    fig.tight_layout()
    return fig


def may_show_report_text(model) -> bool:
    """Whether the Space may show the model's report sentences: only where its recorded data
    source allows re-publishing (a model that records none counts as restricted)."""
    return bool((model.bank_meta.data_source or {}).get("redistributable", False))


def pattern_cards(model, contributions) -> str:
    """HTML cards: name, category, MS, support, confidence, typical sentences, gallery thumbnails."""
    from html import escape

    blocks = []
    folder = model.folder
    show_text = may_show_report_text(model)
    for c in contributions:
        p = model.patterns[c.pattern]
        colour = CATEGORY_COLOURS.get(p.category, "#333")
        parts = [
            f'<div style="border-left:6px solid {colour};padding:4px 10px;margin:8px 0">',
            f"<b>#{p.id} {escape(pattern_label(p))}</b> <i>({p.category})</i><br>",
            f"contribution <b>{c.contribution:+.2f}</b>, activation {c.activation:.2f}; MS {p.ms:.2f}; "
            f"found by {p.support} members; naming confidence {p.confidence or 0:.2f}"
            + (f"; {escape(_support_text(p))}" if p.name_support else "")
            + "<br>",
        ]
        if p.typical_sentences and show_text:
            parts.append(
                "typical report sentences: " + " / ".join(f"<i>{escape(t)}</i>" for t in p.typical_sentences)
            )
            fit = p.sentence_fit
            if fit is not None and fit < SENTENCE_FIT:
                parts.append(
                    f"<br><b>⚠ these sentences do not speak of '{escape(p.name)}'</b> "
                    f"(best match {fit:.2f}): name and reports disagree"
                )
        strip = thumbnail_strip(folder, p.id)
        if strip is not None:
            parts.append(
                f'<div style="margin-top:4px"><img src="/gradio_api/file={strip}" '
                'alt="gallery: the top-activating images, best first" style="height:88px"></div>'
            )
        else:
            rows = [g["row"] for g in p.gallery[:5]]
            parts.append(f"<br>gallery: dataset rows {rows} (no thumbnails for this data)")
        parts.append("</div>")
        blocks.append("".join(parts))
    return "".join(blocks) or "No pattern contributes."


def ood_banner(ex) -> str:
    """A prominent warning when the image is outside the training distribution, else ''."""
    if not ex.out_of_distribution:
        return ""
    return f"> ## ⚠ Outside the training distribution\n> {ex.notes[0]}\n\n"


def _support_text(p) -> str:
    s = p.name_support
    verdict = "name kept" if p.named else "name withheld"
    if "rule" in s:  # named from the report concepts (patterns/naming.py)
        concept = (s.get("concept") or "?").replace("_", " ")
        if s["rule"] == "graded":
            if s.get("auroc") is None:
                return f"{verdict}: no report concept to rank"
            return f"{verdict}: its magnitude ranks reports of {concept} at AUROC {s['auroc']:.2f}"
        if s.get("precision") is None:
            return f"{verdict}: too few gallery images with a readable report"
        return (
            f"{verdict}: {s['precision']:.0%} of its gallery's reports state {concept} "
            f"({s['lift']:.1f}x the base rate)"
        )
    if s.get("gallery_share") is not None:
        return f"{verdict}: {s['gallery_share']:.0%} of its gallery's reports have {s['label']}"
    if s.get("auroc") is None:
        return f"name not checked: no {s['label']} labels in the data"
    return f"{verdict}: detects the report label {s['label']} at AUROC {s['auroc']:.2f}"


def examples_label(examples: list[tuple[str, str]]) -> str:
    """The examples' heading: what they are, only what is there."""
    kinds = []
    if any(c.startswith("phantom") for _, c in examples):
        kinds.append("phantoms with ground truth")
    if any(c.startswith("NIH") for _, c in examples):
        kinds.append("real NIH ChestX-ray14 images with NIH labels")
    if any(not c.startswith(("phantom", "NIH")) for _, c in examples):
        kinds.append("test images of the model's data with their report labels")
    return "Examples (" + "; ".join(kinds) + ")" if kinds else "Examples"


def health_warning(model) -> str:
    """A prominent note when the model's health checks failed (``patterns.json`` meta), else ''."""
    bad = [c for c in model.bank_meta.health if not c["ok"]]
    if not bad:
        return ""
    items = "\n".join(f"> - {c['message']} (band: {c['band']})" for c in bad)
    return (
        f"> ## ⚠ This model failed {len(bad)} health check{'s' if len(bad) > 1 else ''}: its predictions "
        f"and explanations are probably not usable.\n>\n{items}"
    )
