"""The bank builder's scoring phases, 1 to 5 (:func:`~lanic_hub.patterns.build.build_bank` calls
them in order): every latent scored in one streamed pass (:func:`score_latents`), latents merged
across members (:func:`merge_across_members`), every pattern scored in a second pass
(:func:`score_patterns`), label purity on the sample rows (:func:`label_purity`), and the
selection (:func:`select_patterns`). Each returns a NamedTuple whose fields document their shapes.

Two streaming passes over the embedding shards, memory bounded by the number of latents (not of
images):

1. every latent: frequency, max, mean, MonoSemanticity (exact, one pass), its top activating
   images, and its activations on a fixed sample of rows (profiles, label AUROCs);
2. after merging latents across members into patterns: the same scores for each pattern's
   activation (the mean of its member latents' activations), and its gallery.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from ..constants import CHEXPERT_LABELS
from ..data.phantom import ALL_FACTORS, truth
from ..errors import DataError
from ..transcoders import TranscoderEnsemble
from ..transcoders.analysis import auroc_matrix
from ..transcoders.ensemble import flat_latents
from ..utils.progress import tqdm
from .bank import BankConfig, pattern_activations_from_codes
from .merge import Merge, merge_latents
from .scores import LatentStats, ScoreAccumulator, merge_topk
from .store import RowStore
from .table import SampleTable


def nan_to_none(x) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x


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
    names, cols = [], []
    for c in CHEXPERT_LABELS:
        if c in sub.column_names:
            v = np.array([np.nan if x is None else x for x in sub[c]], dtype=float)
            names.append(c)
            cols.append(v == 1)
    for f in ALL_FACTORS:
        if truth.column(f) in sub.column_names:
            names.append(truth.column(f))
            cols.append(truth.presence_of(sub, f))
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


class Sample(NamedTuple):
    """The fixed random sample of rows on which activation profiles and label AUROCs are computed."""

    pos: torch.Tensor
    """(n,) sorted store positions of the sample rows."""
    of: torch.Tensor
    """(N,) index of each store position in the sample, -1 if not sampled."""


def sample_rows(n_rows: int, cfg: BankConfig) -> Sample:
    """``cfg.sample_rows`` of the ``n_rows`` store positions (all, when fewer), drawn by ``cfg.seed``."""
    gen = torch.Generator().manual_seed(cfg.seed)
    n = min(cfg.sample_rows, n_rows)
    pos = torch.randperm(n_rows, generator=gen)[:n].sort().values
    of = torch.full((n_rows,), -1, dtype=torch.long)
    of[pos] = torch.arange(n)
    return Sample(pos, of)


class Stream:
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


def score_latents(ens: TranscoderEnsemble, stream: Stream, sample: Sample, cfg: BankConfig) -> LatentScan:
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
    ens: TranscoderEnsemble, stream: Stream, sample: Sample, cand: Candidates, scan: LatentScan, G: int
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
    ds, row_ids: torch.Tensor, sample: Sample, cand: Candidates, pscan: PatternScan, M: int
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
