"""The stage layer: one library function per stage of building a LanIC model.

    data -> backbone -> embeddings -> train (classifier + ensemble) -> patterns -> model

Each stage function takes typed inputs (the previous stages' handles and its own options) and
returns a small frozen handle to its artefact: the paths, and what the next stage needs already
loaded, so nothing is read twice in one run. Each owns its freshness key: under a :class:`Run`
with a ledger (``out/stages.json``), a stage whose key and outputs are unchanged is skipped.

:func:`build_model` runs them in order (the evaluation stages come after, in
:mod:`lanic_hub.pipeline`); every ``lanic-hub`` subcommand (``embed``, ``train``, ``patterns``,
``export``) is a thin wrapper over one of them. See docs/EXTENDING.md for where a new stage goes.

This module may import every layer below it (modeling and down), never evaluation, pipeline,
demo or cli (the layering contract in pyproject.toml).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import DataError
from .export import export_model, write_card  # noqa: F401  (re-exported for the pipeline)

# the options of every stage live in lanic_hub.options (no torch: the command line reads them)
from .options import (  # noqa: E402,F401  (re-exported: lanic_hub.stages.TrainOptions etc.)
    EmbedOptions,
    ModelOptions,
    PipelineConfig,
    TrainOptions,
    _build,
    is_embedded_default,
    packaged_config_dir,
    packaged_configs,
)
from .patterns.bank import BankConfig, PatternBank
from .run import (  # noqa: F401  (re-exported: lanic_hub.stages.Run etc.)
    STAGE_NAMES,
    BackboneHandle,
    BankHandle,
    DataHandle,
    EmbeddingsHandle,
    ModelHandle,
    Run,
    TrainedHandle,
)

# --------------------------------------------------------------------------- the stages


def resolve_backbone_spec(spec: str, progress: bool = True) -> str:
    """'phantom' means the cached phantom CLIP (trained on first use); any other spec is returned."""
    if spec == "phantom":
        from .backbone.phantom_clip import ensure_phantom_clip

        return f"local-dir:{ensure_phantom_clip(progress=progress)}"
    return spec


def data_stage(
    run: Run,
    data: str,
    phantom_n: int = PipelineConfig.phantom_n,
    phantom_seed: int = 0,
    phantom_shortcuts: tuple[str, ...] = (),
    num_proc: int = 2,
) -> DataHandle:
    """``data: phantom`` draws and exports the phantom world into ``out/phantoms`` (with a preview
    grid and a label summary); any other spec is opened as it is."""
    from .data.open import absolute_spec, open_dataset

    if data != "phantom":
        spec = absolute_spec(data)  # explicit kind and absolute paths: later stages reopen it
        return DataHandle(spec, open_dataset(spec))
    from .data.phantom import PhantomConfig, ShortcutSpec, export, generate
    from .data.phantom.preview import label_summary, preview_grid
    from .data.phantom.render import RENDER_VERSION

    world = PhantomConfig(shortcuts=tuple(ShortcutSpec.parse(x) for x in phantom_shortcuts))
    key = run.key(phantom_n, phantom_seed, RENDER_VERSION, dataclasses.asdict(world))
    hf = run.layout.phantoms_hf
    if not run.fresh("phantoms", key, hf):
        run.step("data", f"phantoms: generating {phantom_n}")
        studies = list(generate(phantom_n, phantom_seed, world, num_proc=num_proc))
        export(run.layout.phantoms, phantom_n, phantom_seed, world, studies=studies, progress=run.progress)
        preview_grid(studies[:16], run.layout.phantom_preview)
        run.layout.label_summary.write_text(label_summary(studies))
        run.mark("phantoms", key)
    else:
        run.step("data", "phantoms: up to date")
    spec = f"hf:{hf.resolve()}"
    return DataHandle(spec, open_dataset(spec))


def backbone_stage(
    run: Run, spec: str, revision: str | None = None, device: str | None = None
) -> BackboneHandle:
    """The backbone (``phantom``: the cached phantom CLIP, trained once) on ``device`` (default:
    cuda when available, else cpu)."""
    import torch

    from .backbone import load_backbone

    if spec == "phantom":
        run.step("backbone", "backbone: the phantom CLIP (trained once, then cached)")
    else:
        run.step("backbone", f"backbone: {spec}")
    bb_spec = resolve_backbone_spec(spec, progress=run.progress)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return BackboneHandle(bb_spec, load_backbone(bb_spec, revision=revision, device=device))


def embeddings_stage(
    run: Run, data: DataHandle, bb: BackboneHandle, opts: EmbedOptions, folder: Path | None = None
) -> EmbeddingsHandle:
    """Embed the dataset into ``folder`` (default ``out/embeddings``); resumable by itself
    (complete shards are skipped). Under a ledger, a folder made from other data is redone."""
    from .backbone.embed import EmbeddingCacheError, embed_dataset, read_manifest

    folder = Path(folder or run.layout.embeddings)
    run.step("embeddings", f"embeddings of {len(data.dataset)} images")
    kw = dict(
        batch_size=opts.batch_size,
        num_workers=opts.num_workers,
        shard_size=opts.shard_size,
        dtype=opts.dtype,
        text=opts.text,
        autocast=opts.autocast,
        data_spec=data.spec,
        progress=run.progress,
    )
    try:
        summary = embed_dataset(data.dataset, bb.backbone, folder, **kw)
    except EmbeddingCacheError as exc:
        if not run.pipeline:  # a folder the user named: say so, never delete it
            raise
        run.log(f"      embeddings are stale ({exc}); recomputing")  # this run's own folder
        import shutil

        shutil.rmtree(folder)
        summary = embed_dataset(data.dataset, bb.backbone, folder, **kw)
    return EmbeddingsHandle(folder, read_manifest(folder), summary)


def load_embeddings_handle(folder: str | Path) -> EmbeddingsHandle:
    """The handle of an existing embeddings folder."""
    from .backbone.embed import read_manifest

    return EmbeddingsHandle(Path(folder), read_manifest(folder))


def load_trained_handle(folder: Path) -> TrainedHandle:
    """The handle of an existing training folder."""
    from .trained import load_trained, read_report
    from .transcoders.ensemble import ensemble_fingerprint

    clf, ens = load_trained(folder)
    return TrainedHandle(Path(folder), read_report(folder), clf, ens, ensemble_fingerprint(ens))


def embeddings_data(emb: EmbeddingsHandle, data: str | None = None) -> DataHandle:
    """The dataset an embeddings folder was made from: ``data`` when given (checked against the
    manifest's fingerprint), else the spec its manifest records."""
    from .data.open import open_dataset  # imports datasets: slow, and only this stage needs it here
    from .data.schema import dataset_fingerprint

    spec = data or emb.manifest.data_spec
    if not spec:
        raise DataError(f"{emb.folder}: the manifest does not say which dataset it came from; pass --data")
    ds = open_dataset(spec)
    if dataset_fingerprint(ds) != emb.manifest.dataset.fingerprint:
        raise DataError(f"{spec} is not the dataset the embeddings in {emb.folder} were made from")
    return DataHandle(spec, ds)


def bank_dataset(bank: PatternBank, data: str | None = None) -> DataHandle:
    """The dataset a bank was built on (the spec its embeddings manifest records), or ``data``."""
    from .backbone.embed import read_manifest
    from .data.open import open_dataset

    spec = data or read_manifest(bank.meta.embeddings).data_spec
    return DataHandle(spec, open_dataset(spec))


def train_stage(
    run: Run,
    emb: EmbeddingsHandle,
    opts: TrainOptions,
    folder: Path | None = None,
    data: str | None = None,
) -> TrainedHandle:
    """Train the classifier and the transcoder ensemble into ``folder`` (default ``out/train``).
    ``data``: the spec of the labels (default: the embeddings manifest's). The key holds the
    preset's contents: a changed preset retrains."""
    from .training import PRESETS, train_from_embeddings

    folder = Path(folder or run.layout.train)
    man = emb.manifest
    key = run.key(
        man.backbone.model_dump(),
        man.dataset.model_dump(),
        dataclasses.asdict(opts),
        PRESETS.get(opts.preset),
    )
    if not run.fresh("train", key, folder / "ensemble.safetensors", folder / "fidelity.json"):
        run.step(
            "train",
            f"classifier + {opts.n_members}-member transcoder ensemble ({opts.preset} preset)",
        )
        rep = train_from_embeddings(
            emb.folder,
            folder,
            data=data,
            preset=opts.preset,
            n_members=opts.members,
            n_latents=opts.latents,
            policy=opts.policy,
            multimodal=opts.multimodal,
            activation=opts.activation,
            input_weight=opts.input_weight,
            epochs=opts.epochs,
            steps=opts.steps,
            progress=run.progress,
        )
        run.mark("train", key)
        if not rep:  # a non-zero rank of a member-parallel run: rank 0 writes the folder
            return TrainedHandle(folder, None, None, None, "")
    else:
        run.step("train", "classifier + ensemble: up to date")
    return load_trained_handle(folder)


def patterns_stage(
    run: Run,
    emb: EmbeddingsHandle,
    trained: TrainedHandle,
    data: DataHandle,
    config: BankConfig,
    bb: BackboneHandle | None = None,
    *,
    vocabulary: str | Path | None = None,
    ms_embeddings: str | Path | None = None,
    thumbnails: bool = False,
) -> BankHandle:
    """Score, merge, select and name the ensemble's patterns over the embeddings; saved beside
    the weights in the training folder, with the report concepts' directions.

    ``vocabulary``: a phrase file for naming (default: the packaged one); ``ms_embeddings``: the
    same rows embedded by another encoder, for MS; ``thumbnails``: also export gallery thumbnails
    (refused before any work for data whose licence forbids it)."""
    from .data.schema import require_redistributable
    from .patterns.build import build_bank
    from .patterns.concepts import write_concept_directions
    from .patterns.gallery import export_thumbnails
    from .patterns.naming import NAMING_VERSION
    from .patterns.vocabulary import load_vocabulary

    if thumbnails:  # refuse before hours of work, not after
        require_redistributable(data.dataset, "export gallery thumbnails")
    extra = [str(vocabulary), str(ms_embeddings), thumbnails]
    if not (vocabulary or ms_embeddings or thumbnails):  # the pipeline's: its key stays what it was
        extra = []
    key = run.key(trained.fingerprint, dataclasses.asdict(config), NAMING_VERSION, *extra)
    if not run.fresh("patterns", key, trained.folder / "patterns.json"):
        run.step("patterns", "pattern bank: score, merge, select, name")
        bank = build_bank(
            trained.ensemble,
            emb.folder,
            data.dataset,
            config=config,
            vocabulary=load_vocabulary(vocabulary),
            backbone=bb.backbone if bb else None,
            ms_embeddings=ms_embeddings,
            data_spec=data.spec,
            progress=run.progress,
        )
        bank.save(trained.folder)
        write_concept_directions(trained.folder, emb.folder, data.dataset, data_spec=data.spec, log=run.log)
        if thumbnails:
            shown = export_thumbnails(bank, data.dataset, trained.folder, progress=run.progress)
            bank.meta.thumbnails = shown
            bank.save(trained.folder)
        run.mark("patterns", key)
    else:
        run.step("patterns", "pattern bank: up to date")
        bank = PatternBank.load(trained.folder)
    return BankHandle(trained.folder, bank)


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
    """``lanic-hub patterns``: :func:`patterns_stage` on an existing training folder ``model``
    (written by ``lanic-hub train``) and embeddings folder, outside a pipeline run (no ledger: it
    always builds). ``data``: the dataset spec (default: the embeddings manifest's)."""
    emb = load_embeddings_handle(embeddings)
    run = Run(Path(model), pipeline=False, progress=progress)
    handle = patterns_stage(
        run,
        emb,
        load_trained_handle(Path(model)),
        embeddings_data(emb, data),
        config or BankConfig(),
        vocabulary=vocabulary,
        ms_embeddings=ms_embeddings,
        thumbnails=thumbnails,
    )
    return handle.bank


def model_stage(
    run: Run,
    trained: TrainedHandle,
    bank: BankHandle,
    data: DataHandle,
    opts: ModelOptions,
    embedded_default: bool = False,
    demo_examples: bool = False,
    folder: Path | None = None,
) -> ModelHandle:
    """The LanIC model folder (default ``out/model``) with its card and the health checks (which
    judge the embedded default against its documented ranges when ``embedded_default``).
    ``demo_examples``: also write the phantom images the README and the demo point at."""
    from .health import run_checks

    run.step("model", "model folder + model card")
    health = [c.to_dict() for c in run_checks(trained.report, bank.bank.meta.counts, embedded_default)]
    folder = Path(folder or run.layout.model)
    model_dir = export_model(trained.folder, folder, data.dataset, opts, trained.report, health=health)
    if demo_examples:
        from .data.examples import phantom_examples

        phantom_examples(run.out)
    return ModelHandle(model_dir, health)


# --------------------------------------------------------------------------- running them

#: A stage as the pipeline runs it: ``(run, cfg, handles so far) -> handle``.
StageFn = Callable[[Run, PipelineConfig, dict[str, Any]], Any]

#: The stages that build a model, in order; ``summary.json`` reports their seconds by these names.
BUILD_STAGES: tuple[tuple[str, StageFn], ...] = (
    (
        "data",
        lambda r, c, h: data_stage(
            r, c.data, c.phantom_n, c.phantom_seed, c.phantom_shortcuts, num_proc=c.embed.num_workers
        ),
    ),
    ("backbone", lambda r, c, h: backbone_stage(r, c.backbone, c.backbone_revision, c.embed.device)),
    ("embeddings", lambda r, c, h: embeddings_stage(r, h["data"], h["backbone"], c.embed)),
    ("train", lambda r, c, h: train_stage(r, h["embeddings"], c.train)),
    (
        "patterns",
        lambda r, c, h: patterns_stage(r, h["embeddings"], h["train"], h["data"], c.patterns, h["backbone"]),
    ),
    (
        "model",
        lambda r, c, h: model_stage(
            r, h["train"], h["patterns"], h["data"], c.model, is_embedded_default(c), c.data == "phantom"
        ),
    ),
)


def run_stages(
    run: Run,
    cfg: PipelineConfig,
    stages: tuple[tuple[str, StageFn], ...],
    handles: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run ``stages`` in order, each on the handles of those before it; time each into
    ``run.seconds`` and record its peak memory in ``run.peak_rss_gb``."""
    from .utils.system import peak_rss_gb, reset_peak_rss

    handles = dict(handles or {})
    for name, fn in stages:
        reset_peak_rss()
        t = time.perf_counter()
        handles[name] = fn(run, cfg, handles)
        run.seconds[name] = time.perf_counter() - t
        run.peak_rss_gb[name] = peak_rss_gb()
    return handles


def build_model(cfg: PipelineConfig, progress: bool = True, log=print) -> dict[str, Any]:
    """Run the model-building stages of ``cfg`` (no evaluation) and return their handles by name."""
    run = Run(Path(cfg.out), log=log, progress=progress)
    run.out.mkdir(parents=True, exist_ok=True)
    return run_stages(run, cfg, BUILD_STAGES)
