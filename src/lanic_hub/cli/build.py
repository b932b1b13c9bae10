"""The subcommands that build a model: phantom, preview, quickstart, build, backbone, embed,
train and patterns."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .. import smoke
from ..constants import PHANTOM_N
from ..options import EmbedOptions, PipelineConfig, TrainOptions, packaged_config_dir, packaged_configs
from ..presets import PRESETS
from ..utils.config_docs import add_dataclass_args, dataclass_from_args
from ._common import add_phantom_args, add_strict, command, distributed, health_exit, phantom_config


def parser_phantom(sub) -> None:
    p = command(
        sub,
        "phantom",
        "generate a phantom dataset (HF datasets + MIMIC-CXR-JPG layout)",
        "Generate phantom chest radiographs with ground truth, reports and labels.",
        "lanic-hub phantom --n 1000 --seed 0 --out runs/phantoms",
    )
    add_phantom_args(p, 1000)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--formats",
        nargs="+",
        default=["hf", "mimic"],
        choices=["hf", "mimic", "hub"],
        help="hf: a saved datasets.Dataset; mimic: the MIMIC-CXR-JPG layout; hub: the Hub's dataset "
        "layout (parquet per split and a card; upload it with `lanic-hub push --dataset`)",
    )
    p.set_defaults(func=cmd_phantom)


def cmd_phantom(args: argparse.Namespace) -> int:
    from ..data.phantom import export

    paths = export(
        args.out,
        args.n,
        args.seed,
        phantom_config(args),
        num_proc=args.num_proc,
        hf="hf" in args.formats,
        mimic="mimic" in args.formats,
        hub="hub" in args.formats,
    )
    for k, v in paths.items():
        print(f"{k}: {v}")
    return 0


def parser_preview(sub) -> None:
    p = command(
        sub,
        "preview",
        "write a labelled preview grid and a label summary",
        "Render phantoms with their ground-truth factors written under each.",
        "lanic-hub preview --n 500 --grid 16 --out docs",
    )
    add_phantom_args(p, 500)
    p.add_argument("--grid", type=int, default=16, help="images in the grid (default 16)")
    p.add_argument("--cols", type=int, default=4, help="grid columns (default 4)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_preview)


def cmd_preview(args: argparse.Namespace) -> int:
    from ..data.phantom import generate
    from ..data.phantom.preview import label_summary, preview_grid, showcase

    studies = list(generate(args.n, args.seed, phantom_config(args), num_proc=args.num_proc))
    out = Path(args.out)
    grid = preview_grid(studies[: args.grid], out / "phantom_preview.png", cols=args.cols)
    preview_grid(showcase(studies), out / "phantom_factors.png", cols=args.cols)
    (out / "label_summary.md").write_text(label_summary(studies))
    print(f"preview grids: {grid}, {out / 'phantom_factors.png'}\nlabel summary: {out / 'label_summary.md'}")
    return 0


def parser_quickstart(sub) -> None:
    p = command(
        sub,
        "quickstart",
        "run the main job on the embedded default (phantom world), ending with a saved model",
        "Run the whole pipeline on the embedded phantom world: phantoms, the phantom CLIP,\n"
        "embeddings, classifier + 100-transcoder ensemble, pattern bank, model folder + card.\n"
        "Stages whose inputs did not change are skipped on a rerun.",
        "lanic-hub quickstart --out runs/quickstart",
    )
    p.add_argument(
        "--n",
        type=int,
        default=None,
        help=f"phantoms (default {PHANTOM_N}; {smoke.PHANTOMS} with {smoke.ENV}=1)",
    )
    # every default below is the embedded default's (PipelineConfig), written there once
    cfg = PipelineConfig()
    p.add_argument(
        "--seed", type=int, default=cfg.phantom_seed, help=f"world seed (default {cfg.phantom_seed})"
    )
    workers = cfg.embed.num_workers
    p.add_argument("--num-proc", type=int, default=workers, help=f"worker processes (default {workers})")
    p.add_argument(
        "--members",
        type=int,
        default=None,
        help=f"ensemble size T (default {PRESETS[cfg.train.preset]['ensemble']['n_members']})",
    )
    p.add_argument(
        "--counterfactual-pairs",
        type=int,
        default=cfg.counterfactual_pairs,
        help="pairs per factor of the phantom-counterfactual suite at the end "
        f"(default {cfg.counterfactual_pairs}; 0: skip it)",
    )
    p.add_argument(
        "--backbone",
        default=cfg.backbone,
        help=f"'{cfg.backbone}' (default: the cached phantom CLIP) or a spec",
    )
    p.add_argument("--out", default=cfg.out, help=f"output folder (default {cfg.out})")
    add_strict(p)
    p.set_defaults(func=cmd_quickstart)


def cmd_quickstart(args: argparse.Namespace) -> int:
    """The main job on the embedded default: phantoms -> phantom CLIP -> ... -> a saved model."""
    cfg = PipelineConfig(
        out=args.out,
        phantom_n=args.n if args.n is not None else smoke.phantoms(PHANTOM_N),
        phantom_seed=args.seed,
        backbone=args.backbone,
        embed=EmbedOptions(num_workers=args.num_proc),
        train=TrainOptions(members=args.members),
        counterfactual_pairs=args.counterfactual_pairs,
    )
    return _run_and_report(cfg, args.strict)


def parser_build(sub) -> None:
    from ..utils.config_docs import describe

    p = command(
        sub,
        "build",
        "run the whole pipeline on real data from a YAML config",
        "Build a LanIC model from a dataset and a backbone described in a YAML file.\n"
        f"Packaged configs (pass the name, or copy one and edit it): {', '.join(packaged_configs())},\n"
        f"  in {packaged_config_dir()}\n\n"
        "YAML keys (every key is optional; the values shown are the defaults, which run the embedded\n"
        "phantom world):\n" + describe(PipelineConfig),
        "lanic-hub build --config mimic-cxr-biomedclip.yaml",
    )
    p.add_argument("--config", required=True, help="a YAML file, or the name of a packaged config")
    p.add_argument("--out", default=None, help="override the config's output folder")
    add_strict(p)
    p.set_defaults(func=cmd_build)


def cmd_build(args: argparse.Namespace) -> int:
    from dataclasses import replace

    cfg = PipelineConfig.from_yaml(args.config)
    if args.out:
        cfg = replace(cfg, out=args.out)
    return _run_and_report(cfg, args.strict)


def _run_and_report(cfg, strict: bool = False) -> int:
    from ..pipeline import run_pipeline

    t = time.perf_counter()
    s = run_pipeline(cfg)
    s.seconds["total"] = round(time.perf_counter() - t, 1)
    shown = {k: v for k, v in s.to_dict().items() if k != "health"}
    print("\n" + json.dumps(shown, indent=1))
    model = s.model
    bad = s.health["failed"]
    verdict = (
        f"Done in {s.seconds['total']:.0f} s, but {len(bad)} health check{'s' if len(bad) > 1 else ''} "
        "failed (above): this model is probably not usable."
        if bad
        else f"Done in {s.seconds['total']:.0f} s; all {len(s.health['checks'])} health checks passed."
    )
    print(
        f"\n{verdict} The model is in {model} (model card: {model}/README.md).\n"
        f"Open the demo:      lanic-hub demo --model {model}\n"
        f"Explain an image:   lanic-hub explain --model {model} IMAGE.png\n"
        "From Python:        from lanic_hub import LanICModel\n"
        f"                    m = LanICModel.from_pretrained('{model}'); print(m.explain('IMAGE.png'))\n"
        "Research software, not a medical device."
    )
    return health_exit(s.health["checks"], model, strict)


def parser_backbone(sub) -> None:
    p = sub.add_parser("backbone", help="backbone tools: train the phantom CLIP, calibrate a backbone")
    bsub = p.add_subparsers(dest="backbone_command", required=True)
    q = command(
        bsub,
        "train-phantom",
        "train the phantom CLIP (cached in the user cache dir)",
        "Train the embedded default backbone on phantom image-report pairs.",
        "lanic-hub backbone train-phantom",
    )
    q.add_argument("--n", type=int, default=6000, help="phantoms to train on (default 6000)")
    q.add_argument("--seed", type=int, default=1000, help="training world seed (default 1000)")
    q.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="fail, caching nothing, if the optimisation takes longer (default: no limit; the step "
        "budget decides the model, so a seed gives the same weights on any machine)",
    )
    q.add_argument("--num-proc", type=int, default=2, help="processes drawing phantoms (default 2)")
    q.add_argument("--out", default=None, help="folder (default: the user cache dir)")
    q.set_defaults(func=cmd_train_phantom)
    q = command(
        bsub,
        "calibrate",
        "probe / zero-shot / device AUROCs of a backbone on phantoms",
        "Measure how well a backbone sees the phantom world's findings.",
        "lanic-hub backbone calibrate --backbone phantom --out docs/phantom_clip.md",
    )
    q.add_argument(
        "--backbone", default="phantom", help="'phantom', hf-hub:..., local-dir:... (default phantom)"
    )
    q.add_argument("--n-train", type=int, default=3000)
    q.add_argument("--n-test", type=int, default=2000)
    q.add_argument("--out", default=None, help="write the tables here (.md) and the numbers (.json)")
    q.set_defaults(func=cmd_calibrate)


def cmd_train_phantom(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..backbone.phantom_clip import PhantomClipConfig, ensure_phantom_clip, train_checked
    from ..records import PhantomClipReport

    cfg = replace(PhantomClipConfig(), n_images=args.n, seed=args.seed)
    kw = dict(max_seconds=args.max_seconds, num_proc=args.num_proc)
    if args.out:
        out = train_checked(cfg, Path(args.out), **kw)
    else:
        out = ensure_phantom_clip(cfg, retrain=True, **kw)
    report = PhantomClipReport.read(out)
    print(json.dumps({"steps": report.steps, "seconds": report.seconds, "check": report.to_dict()["check"]}))
    print(f"phantom CLIP saved in BiomedCLIP layout: {out}\nload it with: local-dir:{out}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from ..backbone import load_backbone
    from ..backbone.calibration import calibration_report, format_report
    from ..stages import resolve_backbone_spec

    bb = load_backbone(resolve_backbone_spec(args.backbone))
    rep = calibration_report(bb, n_train=args.n_train, n_test=args.n_test)
    text = format_report(rep)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        Path(args.out).with_suffix(".json").write_text(json.dumps(rep, indent=1))
    return 0


def parser_embed(sub) -> None:
    p = command(
        sub,
        "embed",
        "extract image / report / sentence embeddings (resumable, sharded)",
        "Embed a dataset with a backbone into sharded safetensors with a manifest.\n"
        "Runs under torchrun too: each process writes its own shards.",
        "lanic-hub embed --data runs/phantoms/hf --backbone phantom --out runs/emb",
    )
    p.add_argument(
        "--data",
        required=True,
        help="hf:PATH | mimic:PATH[?reports=DIR] | chexpert:PATH | nih:PATH | "
        "folder:ROOT[?csv=FILE&image=COL&labels=COL:OBS,...] | PATH (see lanic_hub.data.open)",
    )
    p.add_argument("--backbone", default="phantom", help="'phantom' (default), hf-hub:REPO, local-dir:PATH")
    p.add_argument("--out", required=True, help="embeddings folder")
    add_dataclass_args(
        p, EmbedOptions, choices={"dtype": ["float32", "float16", "bfloat16"], "autocast": ["bf16", "fp16"]}
    )
    p.set_defaults(func=cmd_embed)


def cmd_embed(args: argparse.Namespace) -> int:
    import torch

    from ..stages import Run, backbone_stage, data_stage, embeddings_stage

    with distributed("nccl" if torch.cuda.is_available() else "gloo") as rank:
        opts = dataclass_from_args(EmbedOptions, args)
        device = opts.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if device == "cuda" and rank is not None:
            device = f"cuda:{rank % torch.cuda.device_count()}"
        run = Run(Path(args.out), pipeline=False)
        bb = backbone_stage(run, args.backbone, device=device)
        emb = embeddings_stage(run, data_stage(run, args.data), bb, opts, Path(args.out))
        print(json.dumps(emb.summary))
    return 0


def parser_train(sub) -> None:
    p = command(
        sub,
        "train",
        "train the classifier, then the transcoder ensemble",
        "Train the diagnostic classifier and the transcoder ensemble on embeddings.",
        "lanic-hub train --embeddings runs/quickstart/embeddings --out runs/model",
    )
    p.add_argument("--embeddings", required=True, help="folder written by `lanic-hub embed`")
    p.add_argument("--data", default=None, help="dataset spec for the labels (default: from the manifest)")
    p.add_argument("--out", required=True, help="output folder")

    choices = {"preset": sorted(PRESETS), "policy": ["U-Ignore", "U-Ones", "U-Zeros"]}
    add_dataclass_args(p, TrainOptions, choices={**choices, "activation": ["topk", "jumprelu"]})
    p.add_argument(  # the documented alias of --no-multimodal
        "--image-only",
        dest="multimodal",
        action="store_const",
        const=False,
        default=argparse.SUPPRESS,
        help="train the transcoders on image embeddings only (same as --no-multimodal)",
    )
    add_strict(p)
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from ..stages import Run, load_embeddings_handle, train_stage

    out, opts = Path(args.out), dataclass_from_args(TrainOptions, args)
    with distributed("gloo"):  # member-parallel under torchrun: only a barrier is needed
        t = train_stage(
            Run(out, pipeline=False), load_embeddings_handle(args.embeddings), opts, out, args.data
        )
    if not t.report:  # a non-zero rank under torchrun
        return 0
    rep = t.report.to_dict()
    brief = {"auroc": rep["auroc"], "fvu_mean": rep["fidelity"]["fvu_mean"]}
    print(json.dumps(brief | {"seconds": {"ensemble": t.report.ensemble.seconds}}, indent=1))
    print(f"classifier and ensemble written to {args.out}")
    return health_exit(t.report.health, str(args.out), args.strict)


def parser_patterns(sub) -> None:
    from ..patterns.config import BankConfig

    p = command(
        sub,
        "patterns",
        "score, merge, select and name the ensemble's patterns (the pattern bank)",
        "Build the pattern bank of a trained model over an embeddings folder; writes\n"
        "patterns.safetensors and patterns.json into the model folder.",
        "lanic-hub patterns --model runs/quickstart/model --embeddings runs/quickstart/embeddings",
    )
    p.add_argument("--model", required=True, help="folder written by `lanic-hub train`")
    p.add_argument("--embeddings", required=True, help="folder written by `lanic-hub embed`")
    p.add_argument("--data", default=None, help="dataset spec (default: from the embeddings manifest)")
    p.add_argument(
        "--vocabulary", default=None, help="phrase<TAB>category<TAB>concept file (default: packaged)"
    )
    p.add_argument(
        "--ms-embeddings", default=None, help="embeddings of the same rows by another encoder, for MS"
    )
    p.add_argument("--thumbnails", action="store_true", help="export gallery thumbnails (open licences only)")

    add_dataclass_args(p, BankConfig)
    p.set_defaults(func=cmd_patterns)


def cmd_patterns(args: argparse.Namespace) -> int:
    from ..patterns import BankConfig
    from ..stages import build_patterns

    kw = {k: getattr(args, k) for k in ("data", "vocabulary", "ms_embeddings", "thumbnails")}
    bank = build_patterns(args.model, args.embeddings, config=dataclass_from_args(BankConfig, args), **kw)
    print(json.dumps({"counts": bank.meta.counts, "seconds": bank.meta.seconds}, indent=1))
    for p in sorted(bank.patterns, key=lambda p: -p.support)[:10]:
        print(f"  pattern {p.id:4d}  support {p.support:3d}  {p.category:10s}  {p.name}")
    print(f"pattern bank written to {args.model}")
    return 0
