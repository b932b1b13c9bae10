"""The suite's pairs: which phantom cases, rendered with and without one factor (everything else
identical), and embedded through the backbone; and the phantom splits the suite assigns factors
and trains baselines on."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np
import torch
from PIL import Image

from ...backbone.embed import embed_dataset
from ...data.open import open_dataset
from ...data.phantom import ALL_FACTORS, PhantomConfig, export
from ...data.phantom.render import render
from ...data.phantom.sampling import sample_case
from ...data.schema import dataset_fingerprint
from ...errors import DataError
from ...utils.progress import tqdm
from ...utils.system import cap_workers


@dataclass(frozen=True)
class CounterfactualConfig:
    """How the suite draws its pairs and what it counts."""

    pairs_per_factor: int = 40
    """Cases per factor, each rendered with and without it (17 factors: 680 pairs, ~1,200 images)."""
    seed: int = 7000
    """Seed of the pair cases (never used in training: the quickstart uses 0, the phantom CLIP 1000-1002)."""
    assign_n: int = 1000
    """Phantoms (seed ``seed + 1``) on which each item's ground-truth factor is assigned."""
    baseline_n: int = 2000
    """Phantoms (seed ``seed + 2``) the baselines are trained on (the model's classifier's hidden layer)."""
    moved_at: float = 0.5
    """A logit moved when |Δlogit| exceeds this."""
    assign_auroc: float = 0.9
    """An item stands for the factor it detects best when that AUROC reaches this."""
    visible_at: float = 0.85
    """A factor the embedding carries: a linear probe on e separates its pairs at this AUROC; the
    others are limits of the backbone, reported apart."""
    gallery_purity: float = 0.8
    """An item stands for the factor most over-represented in its top-20 gallery when at least
    this share of the gallery carries it (the fairer assignment, reported beside the AUROC one)."""
    top: int = 3
    """The hit rate looks at this many largest changes."""
    eligible_at: float = 0.1
    """A factor is judged when some finding's logit moves in at least this share of its pairs."""
    target_share: float = 0.5
    """Pass: the median factor share reaches this ..."""
    target_hit: float = 0.8
    """... and a pattern named after the factor is in the top 3 this often."""
    image_size: int = 224
    """Side in pixels of the rendered phantom pairs."""
    num_proc: int = 2
    """Processes rendering the pairs."""


@dataclass(frozen=True)
class Pair:
    index: int
    """Case index within the seed's stream."""
    factor: str


def draw_pairs(
    cfg: CounterfactualConfig, world: PhantomConfig | None = None, factors: tuple[str, ...] = ALL_FACTORS
) -> list[Pair]:
    """``pairs_per_factor`` cases carrying each factor, scanning the seed's case stream in order
    (cases are cheap to draw; only the chosen ones are rendered). A case may serve several factors."""
    world = world or PhantomConfig()
    need = dict.fromkeys(factors, cfg.pairs_per_factor)
    out: list[Pair] = []
    i = 0
    while any(need.values()) and i < 500 * cfg.pairs_per_factor:
        case = sample_case(world, np.random.default_rng((cfg.seed, i, 1)), "test")
        for f in factors:
            if need[f] and case.factor_present(f):
                out.append(Pair(i, f))
                need[f] -= 1
        i += 1
    short = {f: cfg.pairs_per_factor - n for f, n in need.items() if n}
    if short:
        raise DataError(f"the world has too few cases with {sorted(short)} among the first {i} draws")
    return out


def _render(args) -> np.ndarray:
    index, factor, seed, world, size, split = args
    world = PhantomConfig.from_dict(world)
    case = sample_case(world, np.random.default_rng((seed, index, 1)), split)
    if factor:
        case = case.without(factor)
    return render(case, size, seed, index, world.image_noise)


def _render_all(jobs: list[tuple], num_proc: int, desc: str, progress: bool) -> list[np.ndarray]:
    """Render ``jobs`` ((index, factor to switch off or "", seed, world dict, size, split)) in order."""

    n = cap_workers(num_proc, desc)
    bar = tqdm(total=len(jobs), desc=desc, unit="img", disable=not progress)
    imgs = []
    if n <= 1:
        for j in jobs:
            imgs.append(_render(j))
            bar.update()
    else:
        with get_context("fork").Pool(n) as pool:
            for im in pool.imap(_render, jobs, chunksize=8):
                imgs.append(im)
                bar.update()
    bar.close()
    return imgs


def render_pairs(
    pairs: list[Pair], cfg: CounterfactualConfig, world: PhantomConfig | None = None, progress: bool = False
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(with, without) images of each pair; each case's 'with' image is rendered once."""
    d = (world or PhantomConfig()).to_dict()
    on_idx = sorted({p.index for p in pairs})
    jobs = [(i, "", cfg.seed, d, cfg.image_size, "test") for i in on_idx]
    jobs += [(p.index, p.factor, cfg.seed, d, cfg.image_size, "test") for p in pairs]
    imgs = _render_all(jobs, cfg.num_proc, "counterfactual renders", progress)
    on = dict(zip(on_idx, imgs[: len(on_idx)], strict=True))
    return [on[p.index] for p in pairs], imgs[len(on_idx) :]


def render_without(
    indices: list[int],
    splits: list[str],
    factor: str,
    seed: int,
    world: PhantomConfig,
    *,
    num_proc: int = 2,
    progress: bool = False,
) -> list[np.ndarray]:
    """Images ``indices`` of the world's phantom stream ``seed`` (as :func:`~lanic_hub.data.phantom.export`
    draws them, each in its split) rendered again with ``factor`` switched off, all else identical."""
    d = world.to_dict()
    jobs = [(i, factor, seed, d, world.image_size, s) for i, s in zip(indices, splits, strict=True)]
    return _render_all(jobs, num_proc, f"renders without {factor}", progress)


@torch.no_grad()
def embed_images(bb, images: list[np.ndarray], batch: int = 128) -> torch.Tensor:
    """Unit image embeddings through the backbone's own preprocessing (as the datasets path)."""
    out = []
    for a in range(0, len(images), batch):
        x = torch.stack([bb.preprocess(Image.fromarray(im).convert("RGB")) for im in images[a : a + batch]])
        out.append(bb.encode_image(x).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, bb.embed_dim)


def gt_matrix(cases, factors: tuple[str, ...] = ALL_FACTORS) -> np.ndarray:
    """(N, F) whether each case carries each factor."""
    return np.array([[c.factor_present(f) for f in factors] for c in cases], dtype=bool)


def phantom_split(out, n: int, seed: int, world: PhantomConfig, bb, progress: bool):
    """A phantom split exported and embedded once (cached by backbone): (spec, dataset, embeddings dir)."""
    key = hashlib.sha256(json.dumps([world.to_dict(), n, seed], sort_keys=True).encode()).hexdigest()[:10]
    hf = out / "cache" / f"phantoms-{n}-{seed}-{key}" / "hf"
    if not hf.is_dir():
        export(hf.parent, n, seed, world, mimic=False, progress=progress)
    spec = f"hf:{hf.resolve()}"
    ds = open_dataset(spec)
    ident = hashlib.sha256(
        json.dumps([bb.identity(), dataset_fingerprint(ds)], sort_keys=True).encode()
    ).hexdigest()
    folder = hf.parent / f"emb-{ident[:12]}"
    embed_dataset(ds, bb, folder, num_workers=0, text=True, progress=progress, data_spec=spec)
    return spec, ds, folder
