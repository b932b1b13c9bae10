"""The bank builder's phases 6 and 7: the selected patterns grounded in language (a name from the
vocabulary through the backbone's text tower, the most typical report sentences, the text
coherence of its gallery's reports through all-MiniLM-L6-v2), report-concept naming, and the
records of ``patterns.json``."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from ..backbone import load_backbone
from ..backbone.phantom_clip import minilm_dir
from ..constants import CHEXPERT_LABELS
from ..data.phantom import truth
from ..transcoders import TranscoderEnsemble
from .bank import BankConfig
from .language import NAMING_TEMPLATE, Annotation, ReportSentences, name_vectors, sentence_model
from .naming import (
    CONCEPT_CATEGORY,
    NamingRule,
    gallery_label_share,
    gallery_labels,
    naming_decision,
    report_supports,
)
from .phases import Candidates, LatentScan, PatternScan, Purity, Sample, nan_to_none
from .record import Pattern
from .store import RowStore
from .vocabulary import Vocabulary


class Language(NamedTuple):
    """The language grounding of the selected patterns."""

    names: list[Annotation]
    """(S,) each selected pattern's name from the vocabulary."""
    sentences: ReportSentences | None
    """The report sentences of the gallery rows (None: the dataset has no reports)."""
    latent_coherence: torch.Tensor
    """(M,) text coherence of every alive latent's gallery (NaN: none)."""
    pattern_coherence: torch.Tensor
    """(P,) text coherence of every selected pattern's gallery."""
    coherence_baseline: float
    """What a random gallery of the same size scores."""


def ground_in_language(
    ens: TranscoderEnsemble,
    store: RowStore,
    ds,
    scan: LatentScan,
    pscan: PatternScan,
    sel: torch.Tensor,
    latent_pattern: torch.Tensor,
    vocab: Vocabulary,
    backbone,
    sentence_model: str | None,
    cfg: BankConfig,
) -> Language:
    """Name the selected patterns through the backbone's text tower (gallery mean and/or encoder
    direction against the vocabulary's phrases), and measure the text coherence of galleries."""
    M, P, G = len(latent_pattern), len(pscan.member_frequency), cfg.gallery_size
    row_ids, alive = store.row_ids, scan.stats.frequency > 0
    lat_coh, p_coh = torch.full((M,), float("nan")), torch.full((P,), float("nan"))
    coh_baseline, sentences = float("nan"), None
    if "report" in ds.column_names:
        need = torch.unique(
            torch.cat([scan.top_rows[alive].reshape(-1), pscan.gallery_rows[sel].reshape(-1)])
        )
        need = need[need >= 0]
        rows_needed = row_ids[need].tolist()
        texts = ds.select_columns(["report"]).select(rows_needed)["report"]
        reports = dict(zip(rows_needed, texts, strict=True))
        sentences = ReportSentences(reports, sentence_model or str(minilm_dir()))
        to_row = lambda g: torch.where(g >= 0, row_ids[g.clamp(min=0)], torch.full_like(g, -1))  # noqa: E731
        lat_coh[alive] = sentences.coherence(to_row(scan.top_rows[alive]))
        p_coh[sel] = sentences.coherence(to_row(pscan.gallery_rows[sel]))
        coh_baseline = sentences.random_baseline(G, seed=cfg.seed)

    if backbone is None:
        backbone = load_backbone(store.manifest.backbone.spec)
    phrase_emb = backbone.encode_text([NAMING_TEMPLATE.format(p) for p in vocab.phrases]).float().cpu()
    views = []
    if cfg.naming in ("gallery", "both"):  # the mean embedding of each pattern's gallery
        gi = pscan.gallery_rows[sel]
        have = (gi >= 0).float().unsqueeze(-1)
        gal = (store.gather(gi.clamp(min=0)).view(len(sel), G, store.dim) * have).sum(1) / have.sum(1).clamp(
            min=1
        )
        views.append((gal, (scan.embedding_sum / len(store)).float()))
    if cfg.naming in ("direction", "both"):  # the encoder direction: relative to b_pre already
        views.append((pattern_directions(ens, latent_pattern, len(sel)), torch.zeros(store.dim)))
    names = name_vectors(views, phrase_emb, vocab) if len(sel) else []
    return Language(names, sentences, lat_coh, p_coh, coh_baseline)


def pattern_records(
    ds,
    row_ids: torch.Tensor,
    sel: torch.Tensor,
    cand: Candidates,
    pscan: PatternScan,
    purity: Purity,
    lang: Language,
    vocab: Vocabulary,
    cfg: BankConfig,
    n_latents: int,
) -> list[Pattern]:
    """The bank's records: name, members, scores, gallery, label support and the naming decision
    of every selected pattern."""
    label_names, st = purity.label_names, pscan.stats
    gt_cols = [j for j, n in enumerate(label_names) if n.startswith(truth.PREFIX)]
    g_v, g_i = pscan.gallery_values, pscan.gallery_rows
    row_labels = gallery_labels(ds, [int(row_ids[i]) for i in g_i[sel].reshape(-1).tolist() if i >= 0])
    patterns: list[Pattern] = []
    for new, old in enumerate(sel.tolist()):
        members = (cand.pattern_of == old).nonzero(as_tuple=True)[0]
        name = lang.names[new]
        gallery = [
            {"row": int(row_ids[i]), "activation": float(v)}
            for v, i in zip(g_v[old].tolist(), g_i[old].tolist(), strict=True)
            if i >= 0
        ]
        label = purity.pattern_label[old]
        p = Pattern(
            id=new,
            name=name.name,
            category=name.category,
            concept=name.concept,
            confidence=name.confidence,
            annotation=name.__dict__,
            support=int(cand.merge.support[old]),
            members=[[int(g // n_latents), int(g % n_latents)] for g in members],
            frequency=float(pscan.member_frequency[old]),
            coverage=float(st.frequency[old]),
            max=float(st.max[old]),
            mean=float(st.mean[old]),
            ms=float(st.ms[old]),
            purity={
                "label": label_names[label] if label >= 0 else None,
                "auroc": nan_to_none(purity.pattern_auroc[old]),
            },
            text_coherence=nan_to_none(lang.pattern_coherence[old]),
            gallery=gallery,
            label_auroc={
                n: nan_to_none(purity.pattern_full[old, j])
                for j, n in enumerate(label_names)
                if n in CHEXPERT_LABELS
            },
            gallery_label_share=gallery_label_share([g["row"] for g in gallery], row_labels),
        )
        d = naming_decision(p, cfg)
        p.dense, p.named, p.name_support = d["dense"], d["named"], d["name_support"]
        if gt_cols:
            j = int(np.nanargmax(np.nan_to_num(purity.pattern_full[old, gt_cols], nan=-1)))
            p.best_factor = {
                "factor": truth.factor_of(label_names[gt_cols[j]]),
                "auroc": nan_to_none(purity.pattern_full[old, gt_cols[j]]),
            }
        if lang.sentences is not None:
            p.typical_sentences = lang.sentences.typical([g["row"] for g in gallery], cfg.typical_sentences)
        patterns.append(p)
    if lang.sentences is not None and patterns:  # do the typical sentences speak of the name?
        for p, fit in zip(patterns, sentence_fit(patterns, vocab, lang.sentences.model), strict=True):
            p.sentence_fit = fit
    return patterns


def name_from_reports(
    patterns: list[Pattern], ds, store: RowStore, sample: Sample, pscan: PatternScan, sel: torch.Tensor, cfg
) -> None:
    """Apply the report-concept naming rule (:func:`~lanic_hub.patterns.naming.report_supports`)
    to the selected patterns in place; nothing changes when the dataset has no reports."""
    rule = NamingRule(cfg.name_precision, cfg.name_lift, 5, cfg.name_graded_auroc, cfg.name_max_other)
    supports = report_supports(
        ds,
        store.row_ids.numpy(),
        sample.pos.numpy(),
        pscan.on_sample.columns(sel).numpy(),
        pscan.gallery_rows[sel].numpy(),
        pscan.gallery_values[sel].numpy(),
        np.array([bool(p.dense) for p in patterns]),
        rule,
    )
    if supports is None:
        return
    for p, sup in zip(patterns, supports, strict=True):
        p.name_support = sup.to_dict()
        p.named = sup.supported
        if sup.supported:
            p.name, p.concept = sup.name, sup.concept
            p.category = CONCEPT_CATEGORY.get(sup.concept, p.category)


#: Typical sentences "fit" a name when one of them is at least this close (cosine, all-MiniLM-L6-v2)
#: to a phrase of the name's concept; below, the mismatch is shown beside the name.
SENTENCE_FIT = 0.5


def sentence_fit(patterns: list[Pattern], vocab: Vocabulary, model_dir: str) -> list[float | None]:
    """Per pattern, the best cosine between its typical sentences
    and its concept's phrases (None without sentences)."""
    st = sentence_model(model_dir)
    phr = st.encode(list(vocab.phrases), normalize_embeddings=True, convert_to_tensor=True).float().cpu()
    concepts = np.array(vocab.concepts)
    sents = sorted({t for p in patterns for t in p.typical_sentences or []})
    if not sents:
        return [None] * len(patterns)
    emb = st.encode(sents, normalize_embeddings=True, convert_to_tensor=True).float().cpu()
    where = {t: i for i, t in enumerate(sents)}
    out: list[float | None] = []
    for p in patterns:
        ts = p.typical_sentences or []
        mask = torch.from_numpy(concepts == p.concept)
        if not ts or not bool(mask.any()):
            out.append(None)
            continue
        out.append(float((emb[[where[t] for t in ts]] @ phr[mask].T).max()))
    return out


def pattern_directions(ens: TranscoderEnsemble, latent_pattern: torch.Tensor, P: int) -> torch.Tensor:
    """(P, d) normalised mean of the unit encoder directions of each pattern's latents."""
    W = torch.nn.functional.normalize(ens.W_enc.detach().T.float(), dim=1)
    m = latent_pattern >= 0
    out = torch.zeros(P, W.shape[1]).index_add_(0, latent_pattern[m], W[m])
    return torch.nn.functional.normalize(out, dim=1)
