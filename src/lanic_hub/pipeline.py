"""The whole pipeline as one function: data -> backbone -> embeddings -> classifier + ensemble ->
pattern bank -> a saved Hugging Face model folder -> the evaluation suite, whose results go
into the model card.

``lanic-hub quickstart`` runs it on the embedded default (phantoms and the phantom CLIP);
``lanic-hub build --config FILE.yaml`` runs it on real data (ready configs ship in
``lanic_hub/resources/configs``). Every stage writes its artefact under ``out`` and records what
it was made from in ``out/stages.json``; a rerun skips stages whose inputs did not change.

Layout of ``out``::

    phantoms/        (phantom data only) the generated dataset, HF + MIMIC-CXR-JPG layouts
    embeddings/      image / report / sentence embeddings (lanic-hub embed)
    train/           classifier, ensemble, fidelity.json, patterns.* (lanic-hub train, patterns)
    model/           the LanIC model: config.json, model.safetensors, patterns.json, README.md
    eval/            lanic-eval results (one JSON per model and baseline) and the leaderboard
    summary.json     seconds per stage and the headline figures
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .patterns.bank import BankConfig
from .utils.io import write_text_atomic


@dataclass(frozen=True)
class EmbedOptions:
    """How the backbone embeds the dataset (``lanic-hub embed``)."""

    batch_size: int = 64
    """Images per forward pass."""
    num_workers: int = 2
    """Image-decoding worker processes (and phantom-drawing processes); capped at the machine's
    cores, with a note when it is."""
    shard_size: int = 2048
    """Rows per embeddings shard (the unit of resuming and of streaming later stages)."""
    dtype: str = "float32"
    """Stored precision: float32, float16 or bfloat16."""
    autocast: str | None = None
    """'bf16' / 'fp16' on a GPU."""
    device: str | None = None
    """Default: cuda when available, else cpu."""
    text: bool = True
    """Also embed each report and its sentences with the text tower (naming, the text stream)."""


@dataclass(frozen=True)
class TrainOptions:
    """The classifier and the transcoder ensemble (``lanic-hub train``)."""

    preset: str = "phantom"
    """'phantom' (T=100, L=256, k=8) or 'paper' (T=100, L=2048, k=32)."""
    members: int | None = None
    """Ensemble size T (default: the preset's, 100)."""
    policy: str = "U-Ignore"
    """Uncertain (-1) labels: U-Ignore (left out), U-Ones (positive) or U-Zeros (negative)."""
    multimodal: bool | None = None
    """Add report and sentence embeddings to the transcoders' training stream; None: whenever the
    embeddings have them (better naming and image fidelity on the phantom world,
    docs/ensemble_phantom.md)."""
    activation: str = "topk"
    """'topk' or 'jumprelu' (learned thresholds with an L0 penalty; k becomes a cap)."""
    steps: int | None = None
    """Transcoder optimiser steps (default: the preset's budget, for the stream in use)."""
    epochs: int | None = None
    """Train the transcoders for this many passes over their stream instead (default: the
    preset's step budget)."""


@dataclass(frozen=True)
class ModelOptions:
    """The saved model folder and its card."""

    name: str = "CXR-LanIC"
    """The model's name in its card."""
    repo_id: str = "your-name/cxr-lanic"
    """Where you intend to publish it (used in the card's snippet)."""
    bundle_backbone: bool | None = None
    """Copy the backbone into the model folder (a self-contained offline copy). None: bundle the
    phantom CLIP (it lives in a local cache), reference anything else by its spec."""
    thumbnails: bool = True
    """Export gallery thumbnails where the data's licence allows (never MIMIC-CXR / CheXpert)."""


@dataclass(frozen=True)
class PipelineConfig:
    """The whole pipeline (``lanic-hub build --config FILE.yaml``: these are the YAML keys)."""

    out: str = "runs/quickstart"
    """Output folder: every stage's artefact, stages.json and summary.json."""
    data: str = "phantom"
    """'phantom' or a dataset spec: hf:PATH, mimic:PATH, chexpert:PATH, nih:PATH,
    folder:ROOT?csv=FILE&... (an image folder with a labels CSV) or a bare PATH
    (:mod:`lanic_hub.data.open`)."""
    phantom_n: int = 2000
    """data: phantom only: how many phantoms to draw."""
    phantom_seed: int = 0
    """data: phantom only: the world's seed."""
    phantom_shortcuts: tuple[str, ...] = ()
    """Shortcut couplings of the phantom world, e.g. 'chest_tube:Atelectasis:0.9:train+validate'."""
    backbone: str = "phantom"
    """'phantom' (the cached phantom CLIP), hf-hub:REPO or local-dir:PATH."""
    backbone_revision: str | None = None
    """A Hub revision (commit, tag or branch) for an hf-hub: backbone."""
    embed: EmbedOptions = field(default_factory=EmbedOptions)
    """Embedding extraction."""
    train: TrainOptions = field(default_factory=TrainOptions)
    """Classifier and transcoder ensemble."""
    patterns: BankConfig = field(default_factory=BankConfig)
    """How latents become the pattern bank."""
    model: ModelOptions = field(default_factory=ModelOptions)
    """The model folder and its card."""
    evaluate: bool = True
    """Run the evaluation suite of the data (phantom / mimic-cxr / chexpert / nih, or the generic
    'data' suite for any other dataset: its test split) on the saved
    model with every baseline; its results go into the model card."""
    counterfactual_pairs: int = 40
    """On phantom data, the ``phantom-counterfactual`` suite runs after the evaluation (with
    10-member baselines): whether the explanations put a removed factor's effect on its patterns;
    its table goes into the card. This many pairs per factor (17 factors), items assigned on 25 and
    baselines trained on 50 phantoms per pair (at least 200 and 300); 0: skip the suite."""

    @classmethod
    def from_dict(cls, doc: dict[str, Any], where: str = "config") -> PipelineConfig:
        return _build(cls, doc, where)

    @classmethod
    def from_yaml(cls, path: str | Path) -> PipelineConfig:
        import yaml

        path = Path(path)
        if not path.is_file():
            packaged = packaged_config_dir() / path.name
            if not packaged.is_file():
                raise ConfigError(
                    f"{path}: no such config file (packaged configs: {', '.join(packaged_configs())})"
                )
            path = packaged
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        if not isinstance(doc, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        return _build(cls, doc, str(path))


def packaged_config_dir() -> Path:
    """Where the ready configs ship (``lanic_hub/resources/configs``)."""
    return Path(__file__).parent / "resources" / "configs"


def packaged_configs() -> list[str]:
    return sorted(p.name for p in packaged_config_dir().glob("*.yaml"))


def _build(cls, doc: dict[str, Any], where: str):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(doc) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(fields)}")
    kw = {}
    for k, v in doc.items():
        f = fields[k]
        sub = f.default_factory if f.default_factory is not dataclasses.MISSING else None
        if sub is not None and dataclasses.is_dataclass(sub):
            if not isinstance(v, dict):
                raise ConfigError(f"{where}: {k} must be a mapping")
            kw[k] = _build(sub, v, f"{where}: {k}")
        else:
            kw[k] = tuple(v) if isinstance(v, list) else v
    try:
        return cls(**kw)
    except ConfigError as exc:
        if str(exc).startswith(where):
            raise
        raise ConfigError(f"{where}: {exc}") from exc
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


class _Stages:
    """``stages.json``: the key each stage's artefact was made from; a matching key skips the stage."""

    def __init__(self, out: Path) -> None:
        self.path = out / "stages.json"
        self.done: dict[str, str] = json.loads(self.path.read_text()) if self.path.is_file() else {}

    @staticmethod
    def key(*parts: Any) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def fresh(self, stage: str, key: str, *paths: Path) -> bool:
        return self.done.get(stage) == key and all(p.exists() for p in paths)

    def mark(self, stage: str, key: str) -> None:
        self.done[stage] = key
        write_text_atomic(self.path, json.dumps(self.done, indent=1))


def run_pipeline(cfg: PipelineConfig, progress: bool = True, log=print) -> dict[str, Any]:
    """Run every stage (skipping fresh ones) and return the summary written to ``summary.json``."""
    import torch

    from .backbone import load_backbone
    from .backbone.embed import EmbeddingCacheError, embed_dataset
    from .data.open import absolute_spec, open_dataset

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    st = _Stages(out)
    sec: dict[str, float] = {}
    t = time.perf_counter()

    # 1. data
    if cfg.data == "phantom":
        from .data.phantom import PhantomConfig, ShortcutSpec, export
        from .data.phantom.preview import label_summary, preview_grid
        from .data.phantom.render import RENDER_VERSION

        world = PhantomConfig(shortcuts=tuple(ShortcutSpec.parse(x) for x in cfg.phantom_shortcuts))
        key = st.key(cfg.phantom_n, cfg.phantom_seed, RENDER_VERSION, dataclasses.asdict(world))
        hf = out / "phantoms" / "hf"
        if not st.fresh("phantoms", key, hf):
            log(f"[1/7] phantoms: generating {cfg.phantom_n}")
            from .data.phantom import generate

            studies = list(generate(cfg.phantom_n, cfg.phantom_seed, world, num_proc=cfg.embed.num_workers))
            export(
                out / "phantoms", cfg.phantom_n, cfg.phantom_seed, world, studies=studies, progress=progress
            )
            preview_grid(studies[:16], out / "phantom_preview.png")
            (out / "label_summary.md").write_text(label_summary(studies))
            st.mark("phantoms", key)
        else:
            log("[1/7] phantoms: up to date")
        spec = f"hf:{hf.resolve()}"
    else:
        spec = absolute_spec(cfg.data)  # explicit kind and absolute paths: later stages reopen it
    sec["data"] = time.perf_counter() - t

    # 2. backbone
    t = time.perf_counter()
    if cfg.backbone == "phantom":
        from .backbone.phantom_clip import ensure_phantom_clip

        log("[2/7] backbone: the phantom CLIP (trained once, then cached)")
        bb_spec = f"local-dir:{ensure_phantom_clip(progress=progress)}"
    else:
        bb_spec = cfg.backbone
        log(f"[2/7] backbone: {bb_spec}")
    device = cfg.embed.device or ("cuda" if torch.cuda.is_available() else "cpu")
    bb = load_backbone(bb_spec, revision=cfg.backbone_revision, device=device)
    sec["backbone"] = time.perf_counter() - t

    # 3. embeddings (resumable by itself: complete shards are skipped)
    t = time.perf_counter()
    ds = open_dataset(spec)
    log(f"[3/7] embeddings of {len(ds)} images")
    e = cfg.embed
    kw = dict(
        batch_size=e.batch_size,
        num_workers=e.num_workers,
        shard_size=e.shard_size,
        dtype=e.dtype,
        text=e.text,
        autocast=e.autocast,
        data_spec=spec,
        progress=progress,
    )
    try:
        embed_dataset(ds, bb, out / "embeddings", **kw)
    except EmbeddingCacheError as exc:  # this run's own folder, made from other data: redo it
        log(f"      embeddings are stale ({exc}); recomputing")
        import shutil

        shutil.rmtree(out / "embeddings")
        embed_dataset(ds, bb, out / "embeddings", **kw)
    sec["embeddings"] = time.perf_counter() - t

    # 4. classifier + ensemble
    t = time.perf_counter()
    from .training import PRESETS, ensemble_fingerprint, load_trained, train_from_embeddings

    man = json.loads((out / "embeddings" / "manifest.json").read_text())
    train_dir = out / "train"
    # the preset's contents are part of the key: a changed preset retrains
    key = st.key(
        man["backbone"], man["dataset"], dataclasses.asdict(cfg.train), PRESETS.get(cfg.train.preset)
    )
    if not st.fresh("train", key, train_dir / "ensemble.safetensors", train_dir / "fidelity.json"):
        log(
            f"[4/7] classifier + {cfg.train.members or 100}-member transcoder ensemble "
            f"({cfg.train.preset} preset)"
        )
        train_from_embeddings(
            out / "embeddings",
            train_dir,
            preset=cfg.train.preset,
            n_members=cfg.train.members,
            policy=cfg.train.policy,
            multimodal=cfg.train.multimodal,
            activation=cfg.train.activation,
            epochs=cfg.train.epochs,
            steps=cfg.train.steps,
            progress=progress,
        )
        st.mark("train", key)
    else:
        log("[4/7] classifier + ensemble: up to date")
    report = json.loads((train_dir / "fidelity.json").read_text())
    sec["train"] = time.perf_counter() - t

    # 5. pattern bank
    t = time.perf_counter()
    from .patterns import PatternBank
    from .patterns.build import build_bank

    _, ens = load_trained(train_dir)
    key = st.key(ensemble_fingerprint(ens), dataclasses.asdict(cfg.patterns))
    if not st.fresh("patterns", key, train_dir / "patterns.json"):
        log("[5/7] pattern bank: score, merge, select, name")
        bank = build_bank(
            ens, out / "embeddings", ds, config=cfg.patterns, backbone=bb, data_spec=spec, progress=progress
        )
        bank.save(train_dir)
        st.mark("patterns", key)
    else:
        log("[5/7] pattern bank: up to date")
        bank = PatternBank.load(train_dir)
    sec["patterns"] = time.perf_counter() - t

    # 6. the model folder with its card (and the health checks, in both)
    t = time.perf_counter()
    log("[6/7] model folder + model card")
    from .health import run_checks

    health = [c.to_dict() for c in run_checks(report, bank.meta["counts"], is_embedded_default(cfg))]
    model_dir = export_model(train_dir, out / "model", ds, cfg.model, report, health=health)
    if cfg.data == "phantom":  # the example images the README and the demo point at
        from .demo import phantom_examples

        phantom_examples(out)
    sec["model"] = time.perf_counter() - t

    # 7. the evaluation suite, on the same data, and the card's results from it
    t = time.perf_counter()
    from .evaluation.suites import SUITE_OF_KIND

    suite = "phantom" if cfg.data == "phantom" else SUITE_OF_KIND.get(spec.partition(":")[0], "data")
    evaluation = None
    if cfg.evaluate and suite:
        from .evaluation.runner import run as run_eval
        from .evaluation.runner import slug

        key = st.key(ensemble_fingerprint(ens), dataclasses.asdict(cfg.patterns), suite)
        res_file = out / "eval" / "results" / suite / f"{slug(str(model_dir))}.json"
        if not st.fresh("eval", key, res_file):
            log(f"[7/7] evaluation suite '{suite}' with every baseline")
            r = run_eval(
                [str(model_dir)], suite, out / "eval", spec=spec, embeddings=out / "embeddings", log=log
            )
            if r["failed"]:
                raise ConfigError(f"evaluation failed: {r['failed']}")
            st.mark("eval", key)
        else:
            log("[7/7] evaluation: up to date")
        evaluation = json.loads(res_file.read_text())
        board = (out / "eval" / "leaderboard" / f"{suite}.md").read_text()
        # and whether the explanations name the true cause
        if cfg.data == "phantom" and cfg.counterfactual_pairs > 0:
            board += "\n\n" + counterfactual_stage(cfg, out, model_dir, st, key, log)
        write_card(model_dir, ds, cfg.model, report, evaluation, board)
    sec["eval"] = time.perf_counter() - t

    summary = {
        "seconds": {k: round(v, 1) for k, v in sec.items()},
        "leaderboard": str(out / "eval" / "leaderboard" / f"{suite}.md") if evaluation else None,
        "data": spec,
        "backbone": bb_spec,
        "model": str(model_dir),
        "auroc_test": {
            "classifier_macro": report["auroc"]["classifier"]["macro"],
            "ensemble_path_macro": report["auroc"]["ensemble_path"]["macro"],
        },
        "measured_on": report["measured_on"],
        "fvu_full_level": report["fidelity"]["fvu_mean"][str(ens.cfg.n_latents)],
        "pattern_bank": bank.meta["counts"],
        "health": {"failed": [c for c in health if not c["ok"]], "checks": health},
    }
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=1))
    return summary


def counterfactual_stage(cfg: PipelineConfig, out: Path, model_dir: Path, st: _Stages, key: str, log) -> str:
    """The ``phantom-counterfactual`` suite on the saved model (with its cheap baselines: raw latents,
    a single transcoder, 10-member plain-TopK and JumpReLU ensembles, an SAE); its table for the card."""
    from .data.phantom import PhantomConfig, ShortcutSpec
    from .evaluation.counterfactual import SUITE, CounterfactualConfig, run_counterfactual_suite
    from .smoke import counterfactual_config as smoke_counterfactual

    md = out / "eval" / "leaderboard" / f"{SUITE}.md"
    key = f"{key}:pairs={cfg.counterfactual_pairs}"
    if not st.fresh("counterfactual", key, md):
        log(f"[7/7] evaluation suite '{SUITE}' (does a factor's effect land on its patterns?)")
        world = PhantomConfig(shortcuts=tuple(ShortcutSpec.parse(x) for x in cfg.phantom_shortcuts))
        p = cfg.counterfactual_pairs
        cf = CounterfactualConfig(pairs_per_factor=p, assign_n=max(200, 25 * p), baseline_n=max(300, 50 * p))
        run_counterfactual_suite(
            [str(model_dir)],
            out / "eval",
            cfg=smoke_counterfactual(cf),
            world=world,
            baseline_members=10,
            log=log,
        )
        st.mark("counterfactual", key)
    body = md.read_text().split("\n", 1)[1]
    return "### Counterfactual faithfulness: suite `phantom-counterfactual`\n" + body


def write_card(
    model_dir: Path,
    ds,
    opts: ModelOptions,
    report: dict[str, Any],
    evaluation=None,
    leaderboard: str | None = None,
) -> None:
    """(Re)write the model folder's README.md card, with the evaluation suite's results if given."""
    from .card import render_model_card
    from .data.schema import source_of
    from .modeling import LanICModel

    model = LanICModel.from_pretrained(model_dir)
    card = render_model_card(
        model,
        repo_id=opts.repo_id,
        dataset=source_of(ds),
        report=report,
        model_name=opts.name,
        evaluation=evaluation,
        leaderboard=leaderboard,
    )
    write_text_atomic(model_dir / "README.md", str(card))


def is_embedded_default(cfg: PipelineConfig) -> bool:
    """Whether ``cfg`` builds the embedded default (the quickstart as documented): the same
    config but for where it writes, whether it evaluates and how many workers it uses."""
    same = dataclasses.replace(
        cfg,
        out=PipelineConfig.out,
        evaluate=True,
        embed=dataclasses.replace(cfg.embed, num_workers=EmbedOptions.num_workers, device=None),
    )
    return same == PipelineConfig()


def export_model(
    train_dir: Path,
    model_dir: Path,
    ds,
    opts: ModelOptions,
    report: dict[str, Any],
    health: list[dict[str, Any]] | None = None,
) -> Path:
    """Write the LanIC model folder (weights, patterns.json, card, thumbnails where allowed).

    ``health``: the health checks (:mod:`lanic_hub.health`) to record in ``patterns.json`` and the
    card; default: those of ``report`` and the bank."""
    from .card import render_model_card
    from .data.schema import source_of
    from .health import run_checks
    from .modeling import LanICModel
    from .utils.io import replace_dir

    model = LanICModel.from_training_folder(train_dir)
    src = source_of(ds)
    model.bank_meta["data_source"] = dataclasses.asdict(src)
    if health is None:
        health = [c.to_dict() for c in run_checks(report, model.bank_meta.get("counts", {}))]
    model.bank_meta["health"] = health
    from .typicality import typicality_from_embeddings

    typ = typicality_from_embeddings(model.bank_meta.get("embeddings"), ds)
    if typ is not None:  # is an image like the training data? (every prediction says)
        model.set_typicality(typ[0])
        model.bank_meta["typicality"] = typ[1]
    bundle = opts.bundle_backbone
    if bundle is None:
        bundle = "phantom-clip" in str((model.config.backbone or {}).get("spec", ""))

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, bundle_backbone=bundle)
        render_model_card(model, repo_id=opts.repo_id, dataset=src, report=report, model_name=opts.name).save(
            tmp / "README.md"
        )
        if opts.thumbnails and src.redistributable:
            from .patterns.gallery import export_thumbnails

            export_thumbnails(model.bank, ds, tmp, per_pattern=4, progress=False)

    import shutil

    tmp = model_dir.with_name(model_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    return replace_dir(tmp, model_dir)
