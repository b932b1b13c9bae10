"""Build the pattern bank from a trained ensemble and an embeddings folder (``lanic-hub patterns``).

Two streaming passes over the embedding shards, memory bounded by the number of latents (not of
images):

1. every latent: frequency, max, mean, MonoSemanticity (exact, one pass), its top activating
   images, and its activations on a fixed sample of rows (profiles, label AUROCs);
2. after merging latents across members into patterns: the same scores for each pattern's
   activation (the mean of its member latents' activations), and its gallery.

Then the bank is selected by support, frequency and MS, and grounded in language: a name from
the vocabulary through the backbone's text tower, the most typical report sentences, and the
text coherence of its gallery's reports (all-MiniLM-L6-v2 through sentence-transformers).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from ..backbone.embed import read_manifest
from ..constants import CHEXPERT_LABELS
from ..data.schema import dataset_fingerprint
from ..errors import DataError
from ..transcoders import TranscoderEnsemble
from ..transcoders.analysis import auroc_matrix
from ..transcoders.ensemble import flat_latents
from ..utils.progress import tqdm
from .bank import BankConfig, PatternBank, pattern_activations_from_codes
from .concepts import write_concept_directions
from .language import NAMING_TEMPLATE, Annotation, ReportSentences, name_vectors
from .merge import Merge, merge_latents
from .record import Pattern
from .scores import LatentStats, ScoreAccumulator, merge_topk
from .store import RowStore
from .table import SampleTable
from .vocabulary import Vocabulary, load_vocabulary


def _sparse(ens: TranscoderEnsemble, e: torch.Tensor, bias: torch.Tensor | None = None):
    """Non-zero (row, flat latent t*L+i, value) entries of a batch's sparse codes (``bias``: the
    ensemble's :meth:`~TranscoderEnsemble.encoder_bias`, computed once per pass)."""
    v, i = ens.encode(e, bias=bias)
    B, T, k = v.shape
    lat = flat_latents(i, ens.cfg.n_latents).reshape(-1)
    rows = torch.arange(B).view(B, 1, 1).expand(B, T, k).reshape(-1)
    v = v.reshape(-1)
    keep = v > 0
    return rows[keep], lat[keep], v[keep]


def label_table(sub) -> tuple[list[str], np.ndarray]:
    """Binary labels available on rows: CheXpert observations (positive = 1; uncertain and blank
    count as not positive) and, on phantoms, every ground-truth factor's presence."""
    from ..data.phantom import ALL_FACTORS

    names, cols = [], []
    for c in CHEXPERT_LABELS:
        if c in sub.column_names:
            v = np.array([np.nan if x is None else x for x in sub[c]], dtype=float)
            names.append(c)
            cols.append(v == 1)
    for f in ALL_FACTORS:
        if f"gt_{f}" in sub.column_names:
            names.append(f"gt_{f}")
            cols.append(np.array(sub[f"gt_{f}"], dtype=bool))
    return names, (np.stack(cols, 1) if cols else np.zeros((len(sub), 0), dtype=bool))


def _latent_table(codes: SampleTable, alive_ids: torch.Tensor) -> SampleTable:
    """The sample-row activations of the alive latents, column j for latent ``alive_ids[j]``.
    ``alive_ids`` ascends, so renumbering the columns keeps them sorted: no second sort, and the
    values are shared, not copied."""
    where = torch.full((codes.shape[1],), -1, dtype=torch.long)
    where[alive_ids] = torch.arange(len(alive_ids))
    cols = where[codes.cols]
    rows, vals = codes.rows, codes.vals
    if len(cols) and int(cols.min()) < 0:  # entries of latents left out (zero values of dead ones)
        keep = cols >= 0
        rows, cols, vals = rows[keep], cols[keep], vals[keep]
    return SampleTable(rows, cols, vals, (codes.shape[0], len(alive_ids)))


def _purity(acts: SampleTable, Y: np.ndarray, names: list[str], chunk: int = 2048):
    """Best label and its AUROC for each column of ``acts``; NaN where a column never fires."""
    M = acts.shape[1]
    best_auc = np.full(M, np.nan)
    best_lab = np.full(M, -1)
    full = np.full((M, len(names)), np.nan)
    if not names:
        return best_auc, best_lab, full
    for a in range(0, M, chunk):
        block = acts.block(a, min(a + chunk, M)).numpy()
        au = auroc_matrix(block, Y)
        au[~(block > 0).any(0)] = np.nan
        full[a : a + chunk] = au
        ok = ~np.all(np.isnan(au), axis=1)
        best_lab[a : a + chunk][ok] = np.nanargmax(au[ok], axis=1)
        best_auc[a : a + chunk][ok] = np.nanmax(au[ok], axis=1)
    return best_auc, best_lab, full


class _Sample(NamedTuple):
    """The fixed random sample of rows on which activation profiles and label AUROCs are computed."""

    pos: torch.Tensor
    """(n,) sorted store positions of the sample rows."""
    of: torch.Tensor
    """(N,) index of each store position in the sample, -1 if not sampled."""


def _sample_rows(n_rows: int, cfg: BankConfig) -> _Sample:
    gen = torch.Generator().manual_seed(cfg.seed)
    n = min(cfg.sample_rows, n_rows)
    pos = torch.randperm(n_rows, generator=gen)[:n].sort().values
    of = torch.full((n_rows,), -1, dtype=torch.long)
    of[pos] = torch.arange(n)
    return _Sample(pos, of)


class _Stream:
    """Batches of an embeddings folder, checked finite, with the unit rows MS is measured on."""

    def __init__(self, store: RowStore, ms_store: RowStore, batch_size: int, progress: bool) -> None:
        self.store, self.ms_store, self.batch_size, self.progress = store, ms_store, batch_size, progress

    def __call__(self, desc: str):
        """(positions, (B, d) embeddings, (B, d_ms) unit MS embeddings) in order."""
        store = self.store
        bar = tqdm(total=len(store), desc=desc, unit="img", disable=not self.progress)
        for start, e in store.batches(self.batch_size):
            pos = torch.arange(start, start + len(e))
            bad = ~torch.isfinite(e).all(dim=1)
            if bool(bad.any()):
                rows = store.row_ids[pos[bad]].tolist()
                raise DataError(f"{store.folder}: non-finite image embeddings in dataset rows {rows[:20]}")
            e_ms = e if self.ms_store is store else self.ms_store.gather(pos)
            yield pos, e, torch.nn.functional.normalize(e_ms, dim=1)
            bar.update(len(e))
        bar.close()


class LatentScan(NamedTuple):
    """Pass 1: what every latent of the ensemble does over the embedded rows (M = T*L latents)."""

    stats: LatentStats
    """(M,) frequency, max, mean and MS of every latent."""
    embedding_sum: torch.Tensor
    """(d,) float64 sum of all image embeddings (their mean centres the gallery view of naming)."""
    top_values: torch.Tensor
    """(M, G) each latent's largest activations, descending (-inf: fewer than G)."""
    top_rows: torch.Tensor
    """(M, G) the store positions of those images (-1: none)."""
    sample_codes: SampleTable
    """Its non-zero activations on the sample rows, (n_sample, M) by flat latent id."""


def score_latents(ens: TranscoderEnsemble, stream: _Stream, sample: _Sample, cfg: BankConfig) -> LatentScan:
    """Pass 1: frequency, max, mean and MonoSemanticity of every latent (exact, one pass), its top
    activating images, and its activations on the sample rows."""
    M, G = ens.cfg.n_members * ens.cfg.n_latents, cfg.gallery_size
    acc = ScoreAccumulator(M, stream.ms_store.dim)
    e_sum = torch.zeros(stream.store.dim, dtype=torch.float64)
    top_v, top_i = torch.full((M, G), float("-inf")), torch.full((M, G), -1, dtype=torch.long)
    on_sample: list[tuple[torch.Tensor, ...]] = []
    bias = ens.encoder_bias().detach()  # the weights are fixed during the pass
    for pos, e, e_ms in stream("latent scores"):
        rows, lat, val = _sparse(ens, e, bias)
        acc.add(rows, lat, val, e_ms)
        e_sum += e.double().sum(0)
        top_v, top_i = merge_topk(top_v, top_i, lat, val, pos[rows])
        s = sample.of[pos[rows]]
        m = s >= 0
        on_sample.append((s[m], lat[m], val[m]))
    table = SampleTable.from_parts(on_sample, (len(sample.pos), M))
    del on_sample
    return LatentScan(acc.result(), e_sum, top_v, top_i, table)


class Candidates(NamedTuple):
    """Alive latents merged across members into candidate patterns (P of them)."""

    alive_ids: torch.Tensor
    """(A,) flat ids of the latents that fired at least once."""
    profiles: SampleTable
    """(n_sample, A) their activations on the sample rows."""
    merge: Merge
    """Their merge (``pattern_of`` indexes ``alive_ids``; ``support`` (P,))."""
    pattern_of: torch.Tensor
    """(M,) candidate pattern of every latent, -1 for dead ones."""


def merge_across_members(
    ens: TranscoderEnsemble, scan: LatentScan, n_sample: int, cfg: BankConfig, progress: bool
) -> Candidates:
    """Merge alive latents of different members whose encoder directions and sample-row activation
    profiles agree (``cos_threshold``, ``corr_threshold``)."""
    L, M = ens.cfg.n_latents, ens.cfg.n_members * ens.cfg.n_latents
    alive_ids = (scan.stats.frequency > 0).nonzero(as_tuple=True)[0]
    profiles = _latent_table(scan.sample_codes, alive_ids)
    merge = merge_latents(
        ens.W_enc.detach().T[alive_ids],
        profiles,  # sparse: the merge builds only the columns it compares
        alive_ids // L,
        torch.ones(len(alive_ids), dtype=torch.bool),
        scan.stats.frequency[alive_ids],
        cfg.cos_threshold,
        cfg.corr_threshold,
        progress=progress,
    )
    pattern_of = torch.full((M,), -1, dtype=torch.long)
    pattern_of[alive_ids] = merge.pattern_of
    return Candidates(alive_ids, profiles, merge, pattern_of)


class PatternScan(NamedTuple):
    """Pass 2: what every candidate pattern does (activation: the mean of its member latents')."""

    stats: LatentStats
    """(P,) coverage (any member fires), max, mean and MS of each pattern's activation."""
    gallery_values: torch.Tensor
    """(P, G) each pattern's largest activations, descending (-inf: fewer than G)."""
    gallery_rows: torch.Tensor
    """(P, G) the store positions of those images (-1: none)."""
    on_sample: SampleTable
    """(n_sample, P) its activations on the sample rows."""
    member_frequency: torch.Tensor
    """(P,) how often a typical member fires it: the mean of its members' frequencies."""


def score_patterns(
    ens: TranscoderEnsemble, stream: _Stream, sample: _Sample, cand: Candidates, scan: LatentScan, G: int
) -> PatternScan:
    """Pass 2: the scores and gallery of every candidate pattern, through the explain path's own
    pattern activations (:func:`~lanic_hub.patterns.bank.pattern_activations_from_codes`)."""
    P = len(cand.merge.support)
    acc = ScoreAccumulator(P, stream.ms_store.dim)
    g_v, g_i = torch.full((P, G), float("-inf")), torch.full((P, G), -1, dtype=torch.long)
    on_sample: list[tuple[torch.Tensor, ...]] = []
    bias = ens.encoder_bias().detach()
    for pos, e, e_ms in stream("pattern scores"):
        v, i = ens.encode(e, bias=bias)
        act = pattern_activations_from_codes(v, i, ens.cfg.n_latents, cand.pattern_of, cand.merge.support)
        acc.add_dense(act, e_ms)
        r, c = act.nonzero(as_tuple=True)
        val = act[r, c]
        g_v, g_i = merge_topk(g_v, g_i, c, val, pos[r])
        s = sample.of[pos[r]]
        m = s >= 0
        on_sample.append((s[m], c[m], val[m]))
    table = SampleTable.from_parts(on_sample, (len(sample.pos), P))
    freq = scan.stats.frequency[cand.alive_ids]
    member_freq = torch.zeros(P).index_add_(0, cand.merge.pattern_of, freq) / cand.merge.support.float()
    return PatternScan(acc.result(), g_v, g_i, table, member_freq)


class Purity(NamedTuple):
    """Label detection on the sample rows (labels: CheXpert observations, phantom factors)."""

    label_names: list[str]
    latent_auroc: np.ndarray
    """(M,) best label AUROC of every latent (NaN: dead or never fires on the sample)."""
    latent_label: np.ndarray
    """(M,) index of that label, -1 for none."""
    pattern_auroc: np.ndarray
    """(P,) best label AUROC of every candidate pattern."""
    pattern_label: np.ndarray
    """(P,) index of that label."""
    pattern_full: np.ndarray
    """(P, n_labels) every label's AUROC for every candidate pattern."""


def label_purity(
    ds, row_ids: torch.Tensor, sample: _Sample, cand: Candidates, pscan: PatternScan, M: int
) -> Purity:
    """Which label each latent and each candidate pattern detects best, on the sample rows."""
    label_names, Y = label_table(ds.select(row_ids[sample.pos].tolist()))
    lat_auroc, lat_label = np.full(M, np.nan), np.full(M, -1)
    if label_names:
        a, b, _ = _purity(cand.profiles, Y, label_names)
        lat_auroc[cand.alive_ids.numpy()], lat_label[cand.alive_ids.numpy()] = a, b
    return Purity(label_names, lat_auroc, lat_label, *_purity(pscan.on_sample, Y, label_names))


def select_patterns(
    cand: Candidates, pscan: PatternScan, cfg: BankConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """(selected candidate ids, (M,) bank pattern of every latent or -1): the candidates found by at
    least ``min_support`` members, within the frequency band, with MS >= ``min_ms``."""
    support, freq = cand.merge.support, pscan.member_frequency
    ms_ok = torch.nan_to_num(pscan.stats.ms, nan=-np.inf) >= cfg.min_ms
    keep = (support >= cfg.min_support) & (freq >= cfg.min_frequency) & (freq <= cfg.max_frequency) & ms_ok
    sel = keep.nonzero(as_tuple=True)[0]
    remap = torch.full((len(support) + 1,), -1, dtype=torch.long)
    remap[sel] = torch.arange(len(sel))
    return sel, remap[cand.pattern_of]  # -1 (not merged) indexes remap[-1], which is -1


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
        from ..backbone.phantom_clip import minilm_dir

        sentences = ReportSentences(reports, sentence_model or str(minilm_dir()))
        to_row = lambda g: torch.where(g >= 0, row_ids[g.clamp(min=0)], torch.full_like(g, -1))  # noqa: E731
        lat_coh[alive] = sentences.coherence(to_row(scan.top_rows[alive]))
        p_coh[sel] = sentences.coherence(to_row(pscan.gallery_rows[sel]))
        coh_baseline = sentences.random_baseline(G, seed=cfg.seed)

    if backbone is None:
        from ..backbone import load_backbone

        backbone = load_backbone(store.manifest["backbone"]["spec"])
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
        views.append((_pattern_directions(ens, latent_pattern, len(sel)), torch.zeros(store.dim)))
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
    gt_cols = [j for j, n in enumerate(label_names) if n.startswith("gt_")]
    g_v, g_i = pscan.gallery_values, pscan.gallery_rows
    row_labels = _gallery_labels(ds, [int(row_ids[i]) for i in g_i[sel].reshape(-1).tolist() if i >= 0])
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
                "auroc": _f(purity.pattern_auroc[old]),
            },
            text_coherence=_f(lang.pattern_coherence[old]),
            gallery=gallery,
            label_auroc={
                n: _f(purity.pattern_full[old, j]) for j, n in enumerate(label_names) if n in CHEXPERT_LABELS
            },
            gallery_label_share=gallery_label_share([g["row"] for g in gallery], row_labels),
        )
        p.update(naming_decision(p, cfg))  # dense, named, name_support
        if gt_cols:
            j = int(np.nanargmax(np.nan_to_num(purity.pattern_full[old, gt_cols], nan=-1)))
            p.best_factor = {
                "factor": label_names[gt_cols[j]][3:],
                "auroc": _f(purity.pattern_full[old, gt_cols[j]]),
            }
        if lang.sentences is not None:
            p.typical_sentences = lang.sentences.typical([g["row"] for g in gallery], cfg.typical_sentences)
        patterns.append(p)
    if lang.sentences is not None and patterns:  # do the typical sentences speak of the name?
        for p, fit in zip(patterns, sentence_fit(patterns, vocab, lang.sentences.model), strict=True):
            p.sentence_fit = fit
    return patterns


@torch.no_grad()
def build_bank(
    ens: TranscoderEnsemble,
    embeddings: str | Path,
    ds,
    *,
    config: BankConfig | None = None,
    vocabulary: Vocabulary | None = None,
    backbone=None,
    ms_embeddings: str | Path | None = None,
    sentence_model: str | None = None,
    data_spec: str = "",
    progress: bool = True,
) -> PatternBank:
    """Score, merge, select and name the patterns of ``ens`` over the embedded dataset ``ds``.

    ``ds`` is the dataset the embeddings were made from (labels, reports). ``backbone`` (a
    :class:`~lanic_hub.backbone.Backbone`) provides the text tower for naming; None loads the one
    named in the embeddings manifest. ``ms_embeddings``: another embeddings folder of the same rows
    whose encoder MS is measured with (default: the backbone's own image embeddings).

    The phases: :func:`score_latents` (pass 1), :func:`merge_across_members`,
    :func:`score_patterns` (pass 2), :func:`label_purity`, :func:`select_patterns`,
    :func:`ground_in_language`, :func:`pattern_records`.
    """
    from ..transcoders.ensemble import ensemble_fingerprint

    cfg = config or BankConfig()
    vocab = vocabulary or load_vocabulary()
    t0 = time.perf_counter()
    store = RowStore(embeddings)
    N, T, L = len(store), ens.cfg.n_members, ens.cfg.n_latents
    M = T * L
    if store.dim != ens.cfg.d_in:
        raise DataError(f"{embeddings}: embeddings have width {store.dim}, the ensemble reads {ens.cfg.d_in}")
    ms_store, ms_name = store, f"backbone image tower ({store.manifest['backbone']['spec']}, same encoder)"
    if ms_embeddings is not None:
        ms_store = RowStore(ms_embeddings)
        if not torch.equal(ms_store.row_ids, store.row_ids):
            raise DataError(f"{ms_embeddings}: holds other rows than {embeddings}; embed the same dataset")
        ms_name = f"{ms_store.manifest['backbone']['spec']} image tower"
    sample = _sample_rows(N, cfg)
    stream = _Stream(store, ms_store, cfg.batch_size, progress)

    phases: dict[str, float] = {}

    def timed(name, fn, *args):
        t = time.perf_counter()
        out = fn(*args)
        phases[name] = round(time.perf_counter() - t, 2)
        return out

    scan = timed("score latents (pass 1)", score_latents, ens, stream, sample, cfg)
    cand = timed("merge", merge_across_members, ens, scan, len(sample.pos), cfg, progress)
    pscan = timed(
        "score patterns (pass 2)", score_patterns, ens, stream, sample, cand, scan, cfg.gallery_size
    )
    purity = timed("label purity", label_purity, ds, store.row_ids, sample, cand, pscan, M)
    sel, latent_pattern = timed("select", select_patterns, cand, pscan, cfg)
    lang = timed(
        "name",
        ground_in_language,
        *(ens, store, ds, scan, pscan, sel, latent_pattern, vocab, backbone, sentence_model, cfg),
    )
    patterns = timed(
        "records", pattern_records, ds, store.row_ids, sel, cand, pscan, purity, lang, vocab, cfg, L
    )

    if cfg.report_naming and len(sel):
        timed("report naming", name_from_reports, patterns, ds, store, sample, pscan, sel, cfg)
    from ..data.schema import text_redistributable, withhold_report_text

    # the sentence fit above was measured on the sentences; restricted reports never reach a file
    report_text = "typical sentences kept (the data's licence allows re-publishing)"
    if not text_redistributable(ds):
        n = withhold_report_text(patterns)
        report_text = (
            f"typical sentences withheld ({n}): the data's licence forbids re-publishing report text"
        )
    direction = _pattern_directions(ens, latent_pattern, len(sel))
    meta = {
        "ensemble_fingerprint": ensemble_fingerprint(ens),
        "n_members": T,
        "n_latents": L,
        "counts": {
            "latents": M,
            "alive": int((scan.stats.frequency > 0).sum()),
            "merged": len(cand.merge.support),
            "selected": len(sel),
        },
        "config": cfg.__dict__,
        "measured_on": f"{data_spec or 'dataset'}: all {N} embedded rows; label AUROCs and activation "
        f"profiles on a fixed random sample of {len(sample.pos)} rows",
        "ms_encoder": ms_name,
        "sentence_model": lang.sentences.model if lang.sentences else None,
        "report_text": report_text,
        "text_coherence_random_baseline": _f(lang.coherence_baseline),
        "labels": purity.label_names,
        "vocabulary": {"source": vocab.source, "phrases": len(vocab)},
        "backbone": store.manifest["backbone"],
        "embeddings": str(Path(embeddings).resolve()),
        "dataset_fingerprint": store.manifest["dataset"]["fingerprint"],
        "seconds": round(time.perf_counter() - t0, 1),
        "phase_seconds": phases,
    }
    latent_scores = {
        "frequency": scan.stats.frequency,
        "max": scan.stats.max,
        "mean": scan.stats.mean,
        "ms": scan.stats.ms,
        "purity": torch.from_numpy(purity.latent_auroc).float(),
        "purity_label": torch.from_numpy(purity.latent_label).float(),
        "coherence": lang.latent_coherence,
    }
    return PatternBank(latent_pattern, direction, latent_scores, patterns, meta)


def name_from_reports(
    patterns: list[Pattern], ds, store: RowStore, sample: _Sample, pscan: PatternScan, sel: torch.Tensor, cfg
) -> None:
    """Apply the report-concept naming rule (:func:`~lanic_hub.patterns.naming.report_supports`)
    to the selected patterns in place; nothing changes when the dataset has no reports."""
    from .naming import CONCEPT_CATEGORY, NamingRule, report_supports

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


def sentence_fit(
    patterns: list[Pattern] | list[dict[str, Any]], vocab: Vocabulary, model_dir: str
) -> list[float | None]:
    """Per pattern (a :class:`Pattern` or its dict), the best cosine between its typical sentences
    and its concept's phrases (None without sentences)."""
    from .language import sentence_model

    st = sentence_model(model_dir)
    phr = st.encode(list(vocab.phrases), normalize_embeddings=True, convert_to_tensor=True).float().cpu()
    concepts = np.array(vocab.concepts)
    sents = sorted({t for p in patterns for t in p.get("typical_sentences") or []})
    if not sents:
        return [None] * len(patterns)
    emb = st.encode(sents, normalize_embeddings=True, convert_to_tensor=True).float().cpu()
    where = {t: i for i, t in enumerate(sents)}
    out: list[float | None] = []
    for p in patterns:
        ts = p.get("typical_sentences") or []
        mask = torch.from_numpy(concepts == p["concept"])
        if not ts or not bool(mask.any()):
            out.append(None)
            continue
        out.append(float((emb[[where[t] for t in ts]] @ phr[mask].T).max()))
    return out


def _gallery_labels(ds, rows: list[int]) -> dict[int, dict[str, bool]]:
    """The positive CheXpert labels of the given dataset rows (blank and uncertain: not positive)."""
    rows = sorted(set(rows))
    cols = [c for c in CHEXPERT_LABELS if c in ds.column_names]
    if not rows or not cols:
        return {}
    sub = ds.select_columns(cols).select(rows)
    return {r: {c: sub[c][i] == 1 for c in cols} for i, r in enumerate(rows)}


def gallery_label_share(gallery: list[int], row_labels: dict[int, dict[str, bool]]) -> dict[str, float]:
    """Per CheXpert label, the share of a pattern's gallery images whose report has it."""
    have = [row_labels[r] for r in gallery if r in row_labels]
    if not have:
        return {}
    return {c: sum(h[c] for h in have) / len(have) for c in have[0]}


def naming_decision(rec: Pattern | dict[str, Any], cfg: BankConfig) -> dict[str, Any]:
    """Whether a pattern (a :class:`Pattern`, or the dict of any latent direction) is dense
    (context) and whether it carries its name: not dense, confident enough, and supported by the
    report label of its concept (``name_support``): its activation detects the label (AUROC); for
    a device, whose reports only say "support devices", also the images it fires on most (its
    gallery) have that label."""
    from .vocabulary import DEVICE_CONCEPTS, REPORT_LABEL

    dense = rec["frequency"] > cfg.dense_frequency
    label = REPORT_LABEL.get(rec["concept"])
    support: dict[str, Any] | None = None
    if label and rec["concept"] in DEVICE_CONCEPTS:
        share = (rec.get("gallery_label_share") or {}).get(label)
        auroc = (rec.get("label_auroc") or {}).get(label)
        supported = (
            auroc is not None and auroc >= cfg.name_label_auroc and (share or 0.0) >= cfg.name_gallery_share
        )
        support = {"label": label, "auroc": auroc, "gallery_share": share}
    elif label:
        auroc = (rec.get("label_auroc") or {}).get(label)
        supported = auroc is not None and auroc >= cfg.name_label_auroc
        support = {"label": label, "auroc": auroc}
    else:
        supported = cfg.name_unlabelled
    named = (not dense) and rec["confidence"] >= cfg.name_confidence and bool(supported)
    return {"dense": bool(dense), "named": bool(named), "name_support": support}


def _pattern_directions(ens: TranscoderEnsemble, latent_pattern: torch.Tensor, P: int) -> torch.Tensor:
    """(P, d) normalised mean of the unit encoder directions of each pattern's latents."""
    W = torch.nn.functional.normalize(ens.W_enc.detach().T.float(), dim=1)
    m = latent_pattern >= 0
    out = torch.zeros(P, W.shape[1]).index_add_(0, latent_pattern[m], W[m])
    return torch.nn.functional.normalize(out, dim=1)


def _f(x) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x


__all__ = ["Annotation", "RowStore", "build_bank", "label_table"]


def build_patterns(
    model: str | Path,
    embeddings: str | Path,
    *,
    data: str | None = None,
    config: BankConfig | None = None,
    vocabulary: str | Path | None = None,
    ms_embeddings: str | Path | None = None,
    thumbnails: bool = False,
    progress: bool = True,
) -> PatternBank:
    """``lanic-hub patterns``: build the bank of the model in ``model`` (written by ``lanic-hub
    train``) over an embeddings folder, and save it beside the model."""
    from ..data.open import open_dataset
    from ..trained import load_trained
    from .gallery import export_thumbnails

    _, ens = load_trained(model)
    man = read_manifest(embeddings) if Path(embeddings).is_dir() else {}
    spec = data or man.get("data_spec")
    if not spec:
        raise DataError(f"{embeddings}: the manifest does not say which dataset it came from; pass --data")
    ds = open_dataset(spec)
    if man and dataset_fingerprint(ds) != man["dataset"]["fingerprint"]:
        raise DataError(f"{spec} is not the dataset the embeddings in {embeddings} were made from")
    if thumbnails:  # refuse before hours of work, not after
        from ..data.schema import require_redistributable

        require_redistributable(ds, "export gallery thumbnails")
    bank = build_bank(
        ens,
        embeddings,
        ds,
        config=config,
        vocabulary=load_vocabulary(vocabulary),
        ms_embeddings=ms_embeddings,
        data_spec=spec,
        progress=progress,
    )
    bank.save(model)
    write_concept_directions(model, embeddings, ds, data_spec=spec)
    if thumbnails:
        bank.meta["thumbnails"] = export_thumbnails(bank, ds, model, progress=progress)
        bank.save(model)
    return bank
