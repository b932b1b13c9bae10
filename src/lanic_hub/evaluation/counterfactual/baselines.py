"""The suite's baselines, trained on a phantom split of their own and explained on the same pairs
as the model: raw latents, a single transcoder, plain-TopK and JumpReLU ensembles, an SAE with a
sparse probe."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from ...backbone.embed import load_embeddings
from ...baselines import SAESparseProbe
from ...constants import CHEXPERT_LABELS
from ...data.phantom import PhantomConfig
from ...data.schema import label_matrix
from ...patterns import BankConfig
from ...patterns.build import build_bank
from ...patterns.language import NAMING_TEMPLATE, name_vectors
from ...patterns.naming import LatentEvidence, naming_decision
from ...patterns.vocabulary import load_vocabulary
from ...training import preset_schedule
from ...transcoders import train_ensemble
from ...transcoders.analysis import auroc_matrix
from .attribution import BankAttributor, SparseProbeAttributor, named_concepts
from .pairs import CounterfactualConfig, phantom_split


def baseline_attributors(
    model,
    out,
    cfg: CounterfactualConfig,
    world: PhantomConfig,
    members: int | None,
    progress: bool,
    log=print,
) -> list[Any]:
    """The baselines, trained on the baseline split (the model's classifier's hidden layer) and
    given banks built on the assignment split with the model's bank settings:
    raw latents of the model's ensemble (no merging), a single TopK transcoder, plain-TopK and
    JumpReLU ensembles, and a TopK SAE on the embeddings with a sparse probe."""

    bb = model.backbone
    a_spec, a_ds, a_emb = phantom_split(out, cfg.assign_n, cfg.seed + 1, world, bb, progress)
    _, b_ds, b_emb = phantom_split(out, cfg.baseline_n, cfg.seed + 2, world, bb, progress)
    clf, ens = model.classifier, model.ensemble
    xb = load_embeddings(b_emb).image.float()
    with torch.no_grad():
        hb = clf.hidden(xb)
    bank_cfg = BankConfig.from_dict(model.bank_meta.config)
    no_merge = replace(bank_cfg, cos_threshold=2.0, min_support=1, min_frequency=0.0, max_frequency=1.0)
    no_merge = replace(no_merge, min_ms=-1.0)
    schedule = preset_schedule(ens.cfg)
    T = members or ens.cfg.n_members

    def bank_of(e, config, name):
        t = time.perf_counter()
        b = build_bank(e, a_emb, a_ds, config=config, backbone=bb, data_spec=a_spec, progress=progress)
        log(f"  {name}: bank of {len(b)} items ({time.perf_counter() - t:.0f} s)")
        return b

    out_atts: list[Any] = []
    raw = bank_of(ens, no_merge, "raw latents")
    out_atts.append(BankAttributor("raw latents (no merging)", clf, ens, raw, named_concepts(raw.patterns)))
    variants = {
        "single TopK transcoder": replace(ens.cfg, n_members=1, levels=(ens.cfg.n_latents,), first_member=0),
        "plain TopK ensemble": replace(ens.cfg, n_members=T, levels=(ens.cfg.n_latents,), first_member=0),
        "JumpReLU ensemble": replace(ens.cfg, n_members=T, activation="jumprelu", first_member=0),
    }
    for name, tcfg in variants.items():
        t = time.perf_counter()
        trained, _ = train_ensemble(xb, hb, tcfg, schedule, progress=progress)
        log(f"  {name}: trained {tcfg.n_members} members ({time.perf_counter() - t:.0f} s)")
        b = bank_of(trained, no_merge if tcfg.n_members == 1 else bank_cfg, name)
        out_atts.append(BankAttributor(name, clf, trained, b, named_concepts(b.patterns)))
    y, mask = label_matrix(b_ds.select(load_embeddings(b_emb).row_ids.tolist()), policy="U-Ignore")
    sae = SAESparseProbe(n_latents=ens.cfg.n_latents, k=ens.cfg.k).fit(xb.numpy(), y, mask)
    concepts, dense = _name_sae(sae, a_emb, a_ds, bb, bank_cfg)
    out_atts.append(SparseProbeAttributor("SAE + sparse probe", sae, concepts, dense))
    return out_atts


def _name_sae(sae, emb_dir, ds, bb, bank_cfg) -> tuple[list[str | None], list[bool]]:
    """Names for SAE latents by the bank's naming and the bank's naming rule
    (:func:`lanic_hub.patterns.naming.naming_decision`: report-label support, context latents
    unnamed), on the assignment split; and which latents are context (dense)."""
    vocab = load_vocabulary()
    emb = load_embeddings(emb_dir)
    x = emb.image.float()
    z = torch.as_tensor(sae.codes(x.numpy()))
    G = min(bank_cfg.gallery_size, len(x))
    top = z.topk(G, dim=0)
    gal = torch.stack([x[top.indices[:, j]].mean(0) for j in range(z.shape[1])])
    views = [(gal, x.mean(0)), (sae.sae.W_enc.detach().T.float()[: z.shape[1]], torch.zeros(x.shape[1]))]
    phrase = bb.encode_text([NAMING_TEMPLATE.format(p) for p in vocab.phrases]).float().cpu()
    names = name_vectors(views, phrase, vocab)
    rows = ds.select(emb.row_ids.tolist())
    labels = [c for c in CHEXPERT_LABELS if c in rows.column_names]
    Y = np.stack([np.array([v == 1 for v in rows[c]]) for c in labels], 1)
    au = auroc_matrix(z.numpy(), Y)
    freq = (z > 0).float().mean(0)
    concepts, dense = [], []
    for j, a in enumerate(names):
        gal_rows = top.indices[:, j].numpy()
        rec = LatentEvidence(
            concept=a.concept,
            confidence=a.confidence,
            frequency=float(freq[j]),
            label_auroc={c: (None if np.isnan(au[j, k]) else float(au[j, k])) for k, c in enumerate(labels)},
            gallery_label_share={c: float(Y[gal_rows, k].mean()) for k, c in enumerate(labels)},
        )
        d = naming_decision(rec, bank_cfg)
        concepts.append(a.concept if d["named"] and freq[j] > 0 else None)
        dense.append(d["dense"])
    return concepts, dense
