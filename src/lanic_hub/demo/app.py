"""The demo's state and its Gradio app: every UI callback is a method of :class:`Demo` (``predict``,
``explain``, ``what_if``, ``search``), so it is tested without a browser as well as through
``gradio_client``. Uploads that are not radiographs come back as a message in the page, never as a
stack trace."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.examples import phantom_examples
from ..errors import LanicError
from ..patterns.bank import pattern_label
from .examples import allowed_paths, default_model_path, model_examples, nih_examples, nih_examples_dir
from .render import (
    NIH_ATTRIBUTION,
    NOTICE,
    contribution_chart,
    examples_label,
    health_warning,
    may_show_report_text,
    ood_banner,
    pattern_cards,
)


@dataclass
class Demo:
    """The loaded model plus what the pages show besides it."""

    model: Any
    examples: list[tuple[str, str]] = field(default_factory=list)
    """(image path, caption) pairs."""
    leaderboard: str = ""
    _search_index: Any = None
    _measured: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ callbacks (plain Python)
    def _embed(self, image) -> torch.Tensor:
        if image is None:
            raise LanicError("no image: upload a PNG, JPEG or DICOM file, or pick an example")
        path = getattr(image, "name", image)  # gr.File gives a path (or an object with .name)
        return self.model.embed_images([path])[0]

    def predict(self, image) -> tuple[dict[str, float], str]:
        """Probabilities of the findings, and a status message."""
        try:
            p = self.model.predict_batch([getattr(image, "name", image)]) if image is not None else None
        except (LanicError, OSError, ValueError) as exc:
            return {}, f"Cannot read this upload: {exc}"
        if p is None:
            return {}, "No image: upload a PNG, JPEG or DICOM file, or pick an example."
        warn = p[0].notes[0] if p[0].notes else ""
        return dict(p[0]), ("⚠ " + warn) if warn else "ok"

    def explain(self, image, finding: str, top: int = 10):
        """(probabilities, contribution chart, pattern cards markdown, what-if choices, status)."""
        import gradio as gr

        try:
            e = self._embed(image)
        except (LanicError, OSError, ValueError) as exc:
            return {}, None, "", gr.update(choices=[], value=[]), f"Cannot read this upload: {exc}"
        ex = self.model.explain_embedding(e)
        f = ex[finding]
        probs = {x.finding: x.probability for x in ex.findings}
        named = [c for c in f.concepts if c.name][:3]
        said = (
            "Named concepts: "
            + ", ".join(f"{c.name} {c.contribution:+.2f}" for c in named)
            + f" ({f.named_share:.0%} "
            "of the evidence named). "
            if named
            else "No concept carries a name here. "
        )
        choices = [f"{p.pattern}: {p.label or p.name}" for p in f.patterns[:top]]
        return (
            probs,
            contribution_chart(f, top),
            pattern_cards(self.model, f.patterns[: min(top, 6)]),
            gr.update(choices=choices, value=[]),
            ood_banner(ex) + said + f"{finding}: logit {f.logit:+.2f} = baseline {f.bias:+.2f} + "
            f"{sum(not p.dense for p in f.patterns)} patterns "
            f"{sum(p.contribution for p in f.patterns if not p.dense):+.2f} + context {f.context:+.2f} + "
            f"outside the bank {f.unbanked:+.2f} + not captured {f.error:+.2f}; {f.n_cover} items carry 90% "
            "of the evidence.",
        )

    def what_if(self, image, off: list[str]) -> tuple[dict[str, float], str]:
        """Probabilities with the chosen patterns switched off: each logit moves by exactly the
        patterns' contributions (the decomposition is exact)."""
        try:
            e = self._embed(image)
        except (LanicError, OSError, ValueError) as exc:
            return {}, f"Cannot read this upload: {exc}"
        ids = {int(s.split(":", 1)[0]) for s in off or []}
        ex = self.model.explain_embedding(e)
        out, moved = {}, []
        for f in ex.findings:
            delta = sum(p.contribution for p in f.patterns if p.pattern in ids)
            out[f.finding] = float(1 / (1 + np.exp(-(f.logit - delta))))
            moved.append(f"{f.finding} {-delta:+.2f}")
        return out, ("Logit changes: " + ", ".join(moved)) if ids else "No pattern switched off."

    def concept_choices(self) -> list[str]:
        """The concepts the model could leave out: named ones first, then the others."""
        cd = self.model.concepts
        if cd is None:
            return []
        named = cd.named.tolist()
        return [n for n, ok in zip(cd.names, named, strict=True) if ok] + [
            n for n, ok in zip(cd.names, named, strict=True) if not ok
        ]

    def remove_concept(self, image, concept: str) -> tuple[dict[str, float], str]:
        """The model without ``concept`` (:meth:`LanICModel.without`): this image's probabilities
        from the changed model, and each finding's AUROC before and after on the model's own test
        embeddings when they are here (measured once per concept)."""
        from ..removal import RemovalError
        from ..removal_io import measure_removal

        if not concept:
            return {}, "Choose a concept to remove."
        try:
            changed = self.model.without(concepts=[concept], chosen_by="by hand in the demo")
        except RemovalError as exc:
            return {}, f"Cannot remove it: {exc}"
        lines = [
            f"**Without '{concept}'**: each logit is the model's minus the concept's contribution "
            "(the error term is kept). To save such a model: "
            f'`lanic-hub remove --model MODEL --concept "{concept}" --out DIR`.'
        ]
        probs: dict[str, float] = {}
        if image is not None:
            try:
                e = self._embed(image)
            except (LanicError, OSError, ValueError) as exc:
                return {}, f"Cannot read this upload: {exc}"
            f0 = self.model.explain_embedding(e)
            f1 = changed.explain_embedding(e)
            probs = {f.finding: f.probability for f in f1.findings}
            lines.append(
                "This image: "
                + ", ".join(
                    f"{a.finding} {a.probability:.2f} -> {b.probability:.2f}"
                    for a, b in zip(f0.findings, f1.findings, strict=True)
                )
            )
        if concept not in self._measured:
            emb = self.model.bank_meta.embeddings
            m = None
            if emb and (Path(emb) / "manifest.json").is_file():
                from ..backbone.embed import read_manifest
                from ..data.open import open_dataset

                spec = read_manifest(Path(emb)).data_spec
                m = measure_removal(self.model, changed, emb, open_dataset(spec)) if spec else None
            self._measured[concept] = m
        m = self._measured[concept]
        if m is None:
            lines.append("AUROCs not measured: the model's embeddings and labels are not in this Space.")
        else:
            lines += [
                f"AUROC before -> after on {m['measured_on']}:",
                "",
                "| finding | before | after |",
                "|---|---|---|",
            ]
            lines += [f"| {f} | {a:.3f} | {b:.3f} ({b - a:+.3f}) |" for f, (a, b) in m["auroc"].items()]
        return probs, "\n".join(lines)

    def search(self, query: str, category: str = "all", limit: int = 25) -> list[list[Any]]:
        """Patterns matching a free-text query (sentence-transformers over each pattern's name and
        typical sentences), optionally of one category: rows of [id, name, category, MS, support, score]."""
        pats = self.model.patterns
        keep = [i for i, p in enumerate(pats) if category in ("all", "", None) or p.category == category]
        if not keep:
            return []
        if query and query.strip():
            emb = self._index()
            from ..patterns.language import sentence_model

            q = (
                sentence_model()
                .encode([query], normalize_embeddings=True, convert_to_tensor=True)
                .float()
                .cpu()
            )
            scores = (emb[keep] @ q[0]).tolist()
        else:
            scores = [float(pats[i].support) for i in keep]
        order = sorted(range(len(keep)), key=lambda j: -scores[j])[:limit]
        rows = []
        for j in order:
            p = pats[keep[j]]
            ms = round(p.ms, 3) if p.ms is not None else None
            rows.append([p.id, pattern_label(p), p.category, ms, p.support, round(scores[j], 3)])
        return rows

    def _index(self) -> torch.Tensor:
        if self._search_index is None:
            from ..patterns.language import sentence_model

            show = may_show_report_text(self.model)
            texts = [" ".join([p.name, *(p.typical_sentences if show else [])]) for p in self.model.patterns]
            st = sentence_model()
            self._search_index = (
                st.encode(texts, normalize_embeddings=True, convert_to_tensor=True).float().cpu()
            )
        return self._search_index


#: Colours of the unnamed lines of a concept chart.


def load_demo(model: str | None = None, build_if_missing: bool = True, log=print) -> Demo:
    """The demo for ``model`` (a path or repo id; default ``$LANIC_MODEL`` or the quickstart
    output, built first if it is missing)."""
    from ..modeling import LanICModel

    ref = model or default_model_path()
    if model is None and not Path(ref).exists() and build_if_missing and "LANIC_MODEL" not in os.environ:
        from ..pipeline import PipelineConfig, run_pipeline

        log(f"No model at {ref}: building it with the quickstart pipeline (about 6 minutes on 2 cores) ...")
        run_pipeline(PipelineConfig(out=str(Path(ref).parent)), log=log)
    m = LanICModel.from_pretrained(ref)
    examples: list[tuple[str, str]] = model_examples(m.folder)
    root = Path(ref).parent if Path(ref).exists() else None
    if root is not None and not examples:
        examples += phantom_examples(root)
    examples += nih_examples(nih_examples_dir())
    board = ""
    card = (m.folder / "README.md") if m.folder else None
    if card and card.is_file():
        text = card.read_text()
        if "## Evaluation" in text:
            board = text.split("## Evaluation", 1)[1].split("\n## ", 1)[0]
        for head in ("## Items removed from this model",):  # a changed model: what it leaves out
            if head in text:
                board += "\n\n" + head.replace("## ", "### ") + text.split(head, 1)[1].split("\n## ", 1)[0]
    return Demo(m, examples, board)


def build_app(demo: Demo):
    """The Gradio Blocks app: Explain, Patterns and Leaderboard tabs."""
    import gradio as gr

    findings = list(demo.model.config.findings)
    cats = ["all", *sorted({p.category for p in demo.model.patterns})]
    with gr.Blocks(title="CXR-LanIC demo (research use only)", analytics_enabled=False) as app:
        gr.Markdown("# CXR-LanIC: predictions explained by named concepts and patterns\n\n" + NOTICE)
        warning = health_warning(demo.model)
        if warning:
            gr.Markdown(warning, elem_id="health-warning")
        with gr.Tab("Explain"):
            with gr.Row():
                with gr.Column(scale=1):
                    upload = gr.File(
                        label="Chest radiograph (PNG, JPEG or DICOM)", file_types=None, type="filepath"
                    )
                    finding = gr.Dropdown(findings, value=findings[-1], label="Finding to explain")
                    go = gr.Button("Explain", variant="primary")
                    if demo.examples:
                        gr.Examples(
                            [[p] for p, _ in demo.examples],
                            inputs=[upload],
                            example_labels=[c for _, c in demo.examples],
                            label=examples_label(demo.examples),
                        )
                        if any(c.startswith("NIH") for _, c in demo.examples):
                            gr.Markdown(f"<small>{NIH_ATTRIBUTION}</small>")
                with gr.Column(scale=2):
                    status = gr.Markdown()
                    labels = gr.Label(label="Probabilities", num_top_classes=len(findings))
                    chart = gr.Plot(label="Contributions")
            cards = gr.HTML()
            with gr.Accordion("What if: switch patterns off", open=False):
                off = gr.CheckboxGroup(label="Patterns to switch off (top contributors)", choices=[])
                whatif_labels = gr.Label(label="Probabilities with those patterns off")
                whatif_status = gr.Markdown()
            concepts = demo.concept_choices()
            if concepts:
                with gr.Accordion("Remove a concept from the model", open=False):
                    drop = gr.Dropdown(concepts, value=None, label="Concept to leave out (e.g. a device)")
                    remove = gr.Button("Remove this concept from the model")
                    removed_labels = gr.Label(label="Probabilities of the changed model")
                    removed_status = gr.Markdown()
                remove.click(
                    demo.remove_concept,
                    [upload, drop],
                    [removed_labels, removed_status],
                    api_name="remove_concept",
                )
            go.click(demo.explain, [upload, finding], [labels, chart, cards, off, status], api_name="explain")
            off.change(demo.what_if, [upload, off], [whatif_labels, whatif_status], api_name="what_if")
            hidden_predict = gr.Button("Predict only", size="sm")
            hidden_predict.click(demo.predict, [upload], [labels, status], api_name="predict")
        with gr.Tab("Patterns"):
            with gr.Row():
                query = gr.Textbox(
                    label="Search patterns (free text)", placeholder="e.g. blunted costophrenic angle"
                )
                category = gr.Dropdown(cats, value="all", label="Category")
            table = gr.Dataframe(
                headers=["id", "name", "category", "MS", "support", "score"],
                value=demo.search("", "all"),
                interactive=False,
            )
            query.submit(demo.search, [query, category], [table], api_name="search")
            category.change(demo.search, [query, category], [table])
        with gr.Tab("Leaderboard"):
            gr.Markdown(demo.leaderboard or "No evaluation results in this model's card.")
        gr.Markdown(NOTICE)
    return app


def launch(model: str | None = None, port: int | None = None, share: bool = False, **kw):
    import gradio as gr

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    d = load_demo(model)
    app = build_app(d)
    app.queue(default_concurrency_limit=2)
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    return app.launch(
        server_port=port,
        share=share,
        allowed_paths=allowed_paths(d.model.folder),
        theme=theme,
        footer_links=[],
        **kw,
    )
