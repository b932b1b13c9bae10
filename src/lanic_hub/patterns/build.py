"""Build the pattern bank from a trained ensemble and an embeddings folder (``lanic-hub patterns``):
:func:`build_bank` runs the phases (:mod:`.phases`: scoring, merging, selection; :mod:`.grounding`:
language and the records) over an embeddings folder. The command's I/O (the trained model folder
in, the bank and the concept directions written beside it) is the patterns stage,
:func:`lanic_hub.stages.patterns_stage` (``lanic_hub.stages.build_patterns`` outside a run).

The bank is selected by support, frequency and MS, and grounded in language: a name from the
vocabulary through the backbone's text tower, the most typical report sentences, and the text
coherence of its gallery's reports (all-MiniLM-L6-v2 through sentence-transformers).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ..data.schema import (
    text_redistributable,
    withhold_report_text,
)
from ..errors import DataError
from ..records import BankMeta
from ..transcoders import TranscoderEnsemble
from ..transcoders.ensemble import ensemble_fingerprint
from .bank import BankConfig, PatternBank
from .grounding import ground_in_language, name_from_reports, pattern_directions, pattern_records
from .phases import (
    Stream,
    label_purity,
    merge_across_members,
    nan_to_none,
    sample_rows,
    score_latents,
    score_patterns,
    select_patterns,
)
from .store import RowStore
from .vocabulary import Vocabulary, load_vocabulary


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
    cfg = config or BankConfig()
    vocab = vocabulary or load_vocabulary()
    t0 = time.perf_counter()
    store = RowStore(embeddings)
    N, T, L = len(store), ens.cfg.n_members, ens.cfg.n_latents
    M = T * L
    if store.dim != ens.cfg.d_in:
        raise DataError(f"{embeddings}: embeddings have width {store.dim}, the ensemble reads {ens.cfg.d_in}")
    ms_store, ms_name = store, f"backbone image tower ({store.manifest.backbone.spec}, same encoder)"
    if ms_embeddings is not None:
        ms_store = RowStore(ms_embeddings)
        if not torch.equal(ms_store.row_ids, store.row_ids):
            raise DataError(f"{ms_embeddings}: holds other rows than {embeddings}; embed the same dataset")
        ms_name = f"{ms_store.manifest.backbone.spec} image tower"
    sample = sample_rows(N, cfg)
    stream = Stream(store, ms_store, cfg.batch_size, progress)

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
    # the sentence fit above was measured on the sentences; restricted reports never reach a file
    report_text = "typical sentences kept (the data's licence allows re-publishing)"
    if not text_redistributable(ds):
        n = withhold_report_text(patterns)
        report_text = (
            f"typical sentences withheld ({n}): the data's licence forbids re-publishing report text"
        )
    direction = pattern_directions(ens, latent_pattern, len(sel))
    meta = BankMeta(
        **{
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
            "text_coherence_random_baseline": nan_to_none(lang.coherence_baseline),
            "labels": purity.label_names,
            "vocabulary": {"source": vocab.source, "phrases": len(vocab)},
            "backbone": store.manifest.backbone.model_dump(),
            "embeddings": str(Path(embeddings).resolve()),
            "dataset_fingerprint": store.manifest.dataset.fingerprint,
            "seconds": round(time.perf_counter() - t0, 1),
            "phase_seconds": phases,
        }
    )
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


__all__ = ["build_bank"]
