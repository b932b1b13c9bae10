"""The ``lanic-hub`` command line. Every command is a thin wrapper over a library function."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from .errors import ConfigError, LanicError, LicenceError
from .utils.config_docs import add_dataclass_args, dataclass_from_args


def _command(sub, name: str, help: str, desc: str, example: str) -> argparse.ArgumentParser:  # noqa: A002
    """A subcommand whose --help shows its description and a runnable example."""
    return sub.add_parser(
        name,
        help=help,
        description=desc,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _phantom_config(args: argparse.Namespace):
    from .data.phantom import PhantomConfig, ShortcutSpec

    return PhantomConfig(
        image_size=args.size,
        label_noise=args.label_noise,
        shortcuts=tuple(ShortcutSpec.parse(s) for s in args.shortcut),
    )


def _add_phantom_args(p: argparse.ArgumentParser, n: int) -> None:
    p.add_argument("--n", type=int, default=n, help=f"number of images (default {n})")
    p.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    p.add_argument("--size", type=int, default=224, help="image side in pixels (default 224)")
    from .data.phantom import PhantomConfig

    noise = PhantomConfig().label_noise
    p.add_argument("--label-noise", type=float, default=noise, help=f"report flip rate (default {noise})")
    p.add_argument(
        "--shortcut",
        action="append",
        default=[],
        metavar="FACTOR:FINDING[:STRENGTH[:SPLITS]]",
        help="couple a device/artifact to a finding, e.g. portable_marker:Edema:0.9:train",
    )
    p.add_argument("--num-proc", type=int, default=1, help="worker processes (default 1)")


def cmd_phantom(args: argparse.Namespace) -> int:
    from .data.phantom import export

    paths = export(
        args.out,
        args.n,
        args.seed,
        _phantom_config(args),
        num_proc=args.num_proc,
        hf="hf" in args.formats,
        mimic="mimic" in args.formats,
        hub="hub" in args.formats,
    )
    for k, v in paths.items():
        print(f"{k}: {v}")
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from .data.phantom import generate
    from .data.phantom.preview import label_summary, preview_grid, showcase

    studies = list(generate(args.n, args.seed, _phantom_config(args), num_proc=args.num_proc))
    out = Path(args.out)
    grid = preview_grid(studies[: args.grid], out / "phantom_preview.png", cols=args.cols)
    preview_grid(showcase(studies), out / "phantom_factors.png", cols=args.cols)
    (out / "label_summary.md").write_text(label_summary(studies))
    print(f"preview grids: {grid}, {out / 'phantom_factors.png'}\nlabel summary: {out / 'label_summary.md'}")
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    """The main job on the embedded default: phantoms -> phantom CLIP -> ... -> a saved model."""
    from .pipeline import EmbedOptions, PipelineConfig, TrainOptions
    from .smoke import phantoms

    cfg = PipelineConfig(
        out=args.out,
        phantom_n=args.n if args.n is not None else phantoms(2000),
        phantom_seed=args.seed,
        backbone=args.backbone,
        embed=EmbedOptions(num_workers=args.num_proc),
        train=TrainOptions(members=args.members),
        counterfactual_pairs=args.counterfactual_pairs,
    )
    return _run_and_report(cfg, args.strict)


def cmd_build(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .pipeline import PipelineConfig

    cfg = PipelineConfig.from_yaml(args.config)
    if args.out:
        cfg = replace(cfg, out=args.out)
    return _run_and_report(cfg, args.strict)


def _run_and_report(cfg, strict: bool = False) -> int:
    from .pipeline import run_pipeline

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
    return _health_exit(s["health"]["checks"], model, strict)


def cmd_export(args: argparse.Namespace) -> int:
    from .patterns import PatternBank
    from .stages import BankHandle, ModelOptions, Run, bank_dataset, load_trained_handle, model_stage

    trained = load_trained_handle(Path(args.model))
    bank = PatternBank.load(trained.folder)  # says to run `lanic-hub patterns` first when missing
    out = Path(args.out)
    model = model_stage(
        Run(out, pipeline=False),
        trained,
        BankHandle(trained.folder, bank),
        bank_dataset(bank, args.data),
        dataclass_from_args(ModelOptions, args),
        folder=out,
    )
    print(f"LanIC model written to {model.folder}")
    return _health_exit(model.health, str(model.folder), args.strict)


def cmd_push(args: argparse.Namespace) -> int:
    if args.dataset is not None:
        from .data.hub import dataset_upload_plan as plan
        from .data.hub import push_dataset_folder as push

        folder, kind = Path(args.dataset), "dataset"
    else:
        from .modeling import push_folder as push
        from .modeling import upload_plan as plan

        folder, kind = Path(args.model), "model"
    files = plan(folder)  # the licence check: LicenceError (exit 4) names what may not go up
    size = sum((folder / f).stat().st_size for f in files)
    print(f"{len(files)} files, {size / 2**20:.1f} MiB, would go to the {kind} repo {args.repo}:")
    for f in files:
        print(f"  {f}")
    if args.dry_run:
        print("dry run: nothing was uploaded")
        return 0
    message = args.message or f"Upload LanIC {kind}"
    info = push(folder, args.repo, private=args.private, commit_message=message)
    print(f"uploaded: {getattr(info, 'commit_url', info)}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from .modeling import LanICModel
    from .removal import RemovalError
    from .removal_io import choose_from_reference, concept_from_reference, write_changed_model

    model = LanICModel.from_pretrained(args.model)
    concepts, patterns = list(args.concept), list(args.pattern)
    latents = []
    for x in args.latent:
        try:
            t, i = (int(v) for v in x.split(":"))
        except ValueError as exc:
            raise RemovalError(f"--latent {x!r}: expected MEMBER:LATENT, e.g. 3:117") from exc
        latents.append((t, i))
    chosen = "by hand"
    if args.reference and not (args.label and args.finding):
        raise RemovalError("--reference needs --label (the column, e.g. 'Support Devices') and --finding")
    if args.fit_concept:
        if not args.reference:
            raise RemovalError(
                "--fit-concept needs --reference, --label and --finding: the images to fit it on"
            )
        model, rep = concept_from_reference(
            model, args.reference, args.label, args.finding, split=args.split, progress=not args.quiet
        )
        concepts.append(rep["key"])
        chosen = rep["chosen_by"]
        print(f"  {rep['key']}: fitted on {rep['fitted_on']}; AUROC on {rep['checked_on']}: {rep['auroc']}")
    elif args.reference:
        items, rep = choose_from_reference(
            model,
            args.reference,
            args.label,
            args.finding,
            split=args.split,
            budget=args.budget,
            level=args.level,
            min_share=args.min_share,
            progress=not args.quiet,
        )
        (concepts if args.level == "concepts" else patterns).extend(items)
        chosen = rep["chosen_by"]
        for it in rep["items"]:
            print(f"  {it['item']}: {it['score']:+.3f}")
    elif args.concept:
        chosen = "by concept name"
    changed = model.without(concepts, patterns, latents, reason=args.reason, chosen_by=chosen)
    measured = write_changed_model(args.model, changed, args.out, log=print)
    print(f"changed model written to {args.out}: it leaves out {changed.removal.describe(changed)}")
    if measured:
        print(f"AUROC before -> after ({measured['measured_on']}):")
        for f, (a, b) in measured["auroc"].items():
            print(f"  {f}: {a:.3f} -> {b:.3f} ({b - a:+.3f})")
    return 0


def cmd_space(args: argparse.Namespace) -> int:
    from .space import write_space

    out = write_space(args.model, args.out, source=args.source, wheel=args.wheel, title=args.title)
    print(f"Space folder written to {out}: {', '.join(sorted(p.name for p in out.iterdir()))}")
    print(f"create a Gradio Space and upload it: hf upload --repo-type space YOUR-NAME/SPACE {out} .")
    return 0


def cmd_eval_results(args: argparse.Namespace) -> int:
    from .evaluation.hub_results import write_hub_eval_results

    for p in write_hub_eval_results(args.results, args.model, args.benchmark, args.source_url):
        print(f"wrote {p}")
    return 0


def cmd_train_phantom(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .backbone.phantom_clip import PhantomClipConfig, ensure_phantom_clip, train_checked
    from .records import PhantomClipReport

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
    from .backbone import load_backbone
    from .backbone.calibration import calibration_report, format_report
    from .stages import resolve_backbone_spec

    bb = load_backbone(resolve_backbone_spec(args.backbone))
    rep = calibration_report(bb, n_train=args.n_train, n_test=args.n_test)
    text = format_report(rep)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        Path(args.out).with_suffix(".json").write_text(json.dumps(rep, indent=1))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .stages import Run, TrainOptions, load_embeddings_handle, train_stage

    out, opts = Path(args.out), dataclass_from_args(TrainOptions, args)
    with _distributed("gloo"):  # member-parallel under torchrun: only a barrier is needed
        t = train_stage(
            Run(out, pipeline=False), load_embeddings_handle(args.embeddings), opts, out, args.data
        )
    if not t.report:  # a non-zero rank under torchrun
        return 0
    rep = t.report.to_dict()
    brief = {"auroc": rep["auroc"], "fvu_mean": rep["fidelity"]["fvu_mean"]}
    print(json.dumps(brief | {"seconds": {"ensemble": t.report.ensemble.seconds}}, indent=1))
    print(f"classifier and ensemble written to {args.out}")
    return _health_exit(t.report.health, str(args.out), args.strict)


def _health_exit(checks: list[dict], where: str, strict: bool) -> int:
    """Print the failed health checks loudly (stderr); exit code 3 for them under --strict."""
    from .health import failed, format_warning

    if failed(checks):
        print(format_warning(checks, where), file=sys.stderr)
        return 3 if strict else 0
    return 0


def _add_strict(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit with code 3 when a health check fails (the figures of an unusable model)",
    )


def cmd_embed(args: argparse.Namespace) -> int:
    import torch

    from .stages import EmbedOptions, Run, backbone_stage, data_stage, embeddings_stage

    with _distributed("nccl" if torch.cuda.is_available() else "gloo") as rank:
        opts = dataclass_from_args(EmbedOptions, args)
        device = opts.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if device == "cuda" and rank is not None:
            device = f"cuda:{rank % torch.cuda.device_count()}"
        run = Run(Path(args.out), pipeline=False)
        bb = backbone_stage(run, args.backbone, device=device)
        emb = embeddings_stage(run, data_stage(run, args.data), bb, opts, Path(args.out))
        print(json.dumps(emb.summary))
    return 0


@contextmanager
def _distributed(backend: str):
    """Under torchrun (WORLD_SIZE > 1): a process group for the block, yielding this rank; else None."""
    import os

    import torch

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield None
        return
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend)
    try:
        yield torch.distributed.get_rank()
    finally:
        torch.distributed.destroy_process_group()


def cmd_patterns(args: argparse.Namespace) -> int:
    from .patterns import BankConfig
    from .patterns.build import build_patterns

    kw = {k: getattr(args, k) for k in ("data", "vocabulary", "ms_embeddings", "thumbnails")}
    bank = build_patterns(args.model, args.embeddings, config=dataclass_from_args(BankConfig, args), **kw)
    print(json.dumps({"counts": bank.meta.counts, "seconds": bank.meta.seconds}, indent=1))
    for p in sorted(bank.patterns, key=lambda p: -p.support)[:10]:
        print(f"  pattern {p.id:4d}  support {p.support:3d}  {p.category:10s}  {p.name}")
    print(f"pattern bank written to {args.model}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from .modeling import LanICModel

    folder = Path(args.model)
    if (folder / "config.json").is_file() or not folder.exists():  # a model folder or a Hub repo id
        model = LanICModel.from_pretrained(args.model)
    else:  # a `lanic-hub train` + `lanic-hub patterns` folder
        model = LanICModel.from_training_folder(folder)
    if args.backbone:
        from .stages import resolve_backbone_spec

        model.config.backbone = {"spec": resolve_backbone_spec(args.backbone), "revision": None}
        model.config.bundled_backbone = False
    for e in model.explain_batch(list(args.images)):
        print(json.dumps(e.to_dict(), indent=1) if args.json else e.render(top=args.top))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import launch

    launch(args.model, port=args.port, share=args.share)
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="lanic-hub", description="CXR-LanIC toolkit. Research software, not a medical device."
    )
    from .constants import VERSION as __version__

    ap.add_argument("--version", action="version", version=__version__)
    sub = ap.add_subparsers(dest="command", required=True)
    for add in (
        _parser_phantom,
        _parser_preview,
        _parser_quickstart,
        _parser_build,
        _parser_export,
        _parser_push,
        _parser_remove,
        _parser_space,
        _parser_eval_results,
        _parser_backbone,
        _parser_embed,
        _parser_train,
        _parser_patterns,
        _parser_explain,
        _parser_eval,
        _parser_demo,
        _parser_bench,
    ):
        add(sub)
    return ap


def _parser_phantom(sub) -> None:
    p = _command(
        sub,
        "phantom",
        "generate a phantom dataset (HF datasets + MIMIC-CXR-JPG layout)",
        "Generate phantom chest radiographs with ground truth, reports and labels.",
        "lanic-hub phantom --n 1000 --seed 0 --out runs/phantoms",
    )
    _add_phantom_args(p, 1000)
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


def _parser_preview(sub) -> None:
    p = _command(
        sub,
        "preview",
        "write a labelled preview grid and a label summary",
        "Render phantoms with their ground-truth factors written under each.",
        "lanic-hub preview --n 500 --grid 16 --out docs",
    )
    _add_phantom_args(p, 500)
    p.add_argument("--grid", type=int, default=16, help="images in the grid (default 16)")
    p.add_argument("--cols", type=int, default=4, help="grid columns (default 4)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_preview)


def _parser_quickstart(sub) -> None:
    p = _command(
        sub,
        "quickstart",
        "run the main job on the embedded default (phantom world), ending with a saved model",
        "Run the whole pipeline on the embedded phantom world: phantoms, the phantom CLIP,\n"
        "embeddings, classifier + 100-transcoder ensemble, pattern bank, model folder + card.\n"
        "Stages whose inputs did not change are skipped on a rerun.",
        "lanic-hub quickstart --out runs/quickstart",
    )
    p.add_argument("--n", type=int, default=None, help="phantoms (default 2000; 300 with LANIC_HUB_SMOKE=1)")
    p.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    p.add_argument("--num-proc", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--members", type=int, default=None, help="ensemble size T (default 100)")
    p.add_argument(
        "--counterfactual-pairs",
        type=int,
        default=40,
        help="pairs per factor of the phantom-counterfactual suite at the end (default 40; 0: skip it)",
    )
    p.add_argument(
        "--backbone", default="phantom", help="'phantom' (default: the cached phantom CLIP) or a spec"
    )
    p.add_argument("--out", default="runs/quickstart", help="output folder (default runs/quickstart)")
    _add_strict(p)
    p.set_defaults(func=cmd_quickstart)


def _parser_build(sub) -> None:
    from .options import PipelineConfig, packaged_config_dir, packaged_configs
    from .utils.config_docs import describe

    p = _command(
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
    _add_strict(p)
    p.set_defaults(func=cmd_build)


def _parser_export(sub) -> None:
    from .options import ModelOptions

    p = _command(
        sub,
        "export",
        "package a trained folder (train + patterns) as a LanIC model folder with its card",
        "Write config.json, model.safetensors, patterns.json and README.md (the model card).",
        "lanic-hub export --model runs/train --out runs/model",
    )
    p.add_argument(
        "--model", required=True, help="folder written by `lanic-hub train` and `lanic-hub patterns`"
    )
    p.add_argument("--out", required=True, help="the model folder to write")
    p.add_argument("--data", default=None, help="dataset spec (default: from the embeddings manifest)")

    # export references the backbone by its spec unless asked (the pipeline bundles the phantom CLIP)
    add_dataclass_args(p, ModelOptions, defaults={"bundle_backbone": False})
    _add_strict(p)
    p.set_defaults(func=cmd_export)


def _parser_push(sub) -> None:
    p = _command(
        sub,
        "push",
        "upload a LanIC model folder or a benchmark dataset to the Hugging Face Hub (after a licence check)",
        "List the files of a model folder (or of a dataset in the Hub's layout) that would be\n"
        "uploaded, refuse (exit code 4) when it holds images or report text of data whose licence\n"
        "forbids re-publishing (MIMIC-CXR, CheXpert), and upload them with huggingface_hub unless\n"
        "--dry-run.",
        "lanic-hub push --model runs/quickstart/model --repo your-name/cxr-lanic --dry-run\n"
        "  lanic-hub phantom --n 2000 --out runs/bench --formats hub\n"
        "  lanic-hub push --dataset runs/bench/hub --repo your-name/lanic-phantom",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", help="a model folder (written by `lanic-hub export` or a build)")
    what.add_argument(
        "--dataset", help="a dataset in the Hub's layout (`lanic-hub phantom --formats hub` writes one)"
    )
    p.add_argument("--repo", required=True, help="the Hub repo id, e.g. your-name/cxr-lanic")
    p.add_argument("--dry-run", action="store_true", help="list and check only; upload nothing")
    p.add_argument("--private", action="store_true", default=None, help="create the repo as private")
    p.add_argument("--message", default=None, help="the commit message (default: Upload LanIC model/dataset)")
    p.set_defaults(func=cmd_push)


def _parser_remove(sub) -> None:
    p = _command(
        sub,
        "remove",
        "write a copy of a model that leaves out concepts, patterns or latents (shortcut removal)",
        "The copy's logit is the model's minus the removed items' contribution, image by image (the\n"
        "error term is kept). Choose the items by name (--concept, --pattern), by id, or from a\n"
        "labelled reference set: the items whose contribution to --finding differs most between\n"
        "images with and without --label. The removal is recorded in config.json and the card;\n"
        "the source folder is not modified.",
        'lanic-hub remove --model runs/quickstart/model --concept "chest tube" --out runs/no-tube\n'
        "  lanic-hub remove --model runs/quickstart/model --out runs/no-devices --reference "
        "hf:runs/quickstart/phantoms/hf --label 'Support Devices' --finding Atelectasis",
    )
    p.add_argument("--model", required=True, help="the model folder or Hub repo id")
    p.add_argument("--out", required=True, help="the new model folder (must not exist yet)")
    p.add_argument("--concept", action="append", default=[], help="a concept key or name (repeatable)")
    p.add_argument("--pattern", action="append", default=[], help="a bank pattern id or name (repeatable)")
    p.add_argument("--latent", action="append", default=[], help="MEMBER:LATENT (repeatable)")
    p.add_argument("--reference", help="a dataset spec whose images and label column choose the items")
    p.add_argument("--label", help="the reference set's label column, e.g. 'Support Devices'")
    p.add_argument("--finding", help="the finding whose shortcut is removed, e.g. Atelectasis")
    p.add_argument("--split", default="validate", help="the reference rows to use (default: validate)")
    p.add_argument("--budget", type=int, default=5, help="how many items the reference set chooses")
    p.add_argument("--level", choices=["patterns", "concepts"], default="patterns")
    p.add_argument(
        "--min-share",
        type=float,
        default=0.25,
        help="the reference set keeps items scoring at least this share of the top one (default 0.25)",
    )
    p.add_argument(
        "--fit-concept",
        action="store_true",
        help="fit a concept of --label itself on the --reference images (its coefficient with the "
        "findings' labels held fixed), add it to the model's concepts and remove it",
    )
    p.add_argument("--reason", default="", help="why (shown on the card)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_remove)


def _parser_space(sub) -> None:
    p = _command(
        sub,
        "space",
        "write a Hugging Face Space folder for a pushed model",
        "Write app.py, README.md (Spaces header, preload_from_hub) and requirements.txt for a Space\n"
        "that serves the demo of a model on the Hub; nothing is trained at start-up.",
        "lanic-hub space --model your-name/cxr-lanic --out runs/space --wheel dist/lanic_hub-0.1.0-py3-none-any.whl",  # noqa: E501
    )
    p.add_argument("--model", required=True, help="the model's Hub repo id (push it first: lanic-hub push)")
    p.add_argument("--out", required=True, help="the Space folder to write")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--wheel", default=None, help="a lanic-hub wheel to copy into the folder and install")
    src.add_argument("--source", default=None, help="a pip requirement for lanic-hub (e.g. a git+https URL)")
    p.add_argument("--title", default="CXR-LanIC", help="the Space's title")
    p.set_defaults(func=cmd_space)


def _parser_eval_results(sub) -> None:
    p = _command(
        sub,
        "eval-results",
        "write lanic-eval results into a model folder as the Hub's .eval_results/*.yaml",
        "Convert lanic-eval results files of one model into the Hub's evaluation results format\n"
        "(.eval_results/lanic-<suite>.yaml in the model folder; `lanic-hub push` uploads them).",
        "lanic-hub eval-results --results runs/eval/results/phantom/runs_quickstart_model.json "
        "--model runs/quickstart/model --benchmark your-name/lanic-phantom",
    )
    p.add_argument("--results", nargs="+", required=True, help="lanic-eval results JSON files of the model")
    p.add_argument("--model", required=True, help="the model folder to write .eval_results/ into")
    p.add_argument("--benchmark", required=True, help="the benchmark's Hub dataset id (owner/name)")
    p.add_argument("--source-url", default=None, help="a link to the evaluation's logs or results")
    p.set_defaults(func=cmd_eval_results)


def _parser_backbone(sub) -> None:
    p = sub.add_parser("backbone", help="backbone tools: train the phantom CLIP, calibrate a backbone")
    bsub = p.add_subparsers(dest="backbone_command", required=True)
    q = _command(
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
    q = _command(
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


def _parser_embed(sub) -> None:
    from .options import EmbedOptions

    p = _command(
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


def _parser_train(sub) -> None:
    from .options import TrainOptions
    from .presets import PRESETS

    p = _command(
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
    _add_strict(p)
    p.set_defaults(func=cmd_train)


def _parser_patterns(sub) -> None:
    from .patterns.config import BankConfig

    p = _command(
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


def _parser_explain(sub) -> None:
    p = _command(
        sub,
        "explain",
        "explain predictions on images, pattern by pattern",
        "Predict the five findings on images and split each logit into its patterns.",
        "lanic-hub explain --model runs/quickstart/model image.png",
    )
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, DICOM)")
    p.add_argument(
        "--model", required=True, help="a LanIC model folder or Hub repo id, or a train folder with patterns"
    )
    p.add_argument("--backbone", default=None, help="override the backbone recorded in the bank")
    p.add_argument("--top", type=int, default=6, help="patterns shown per finding (default 6)")
    p.add_argument("--json", action="store_true", help="print the explanation as JSON")
    p.set_defaults(func=cmd_explain)


def _parser_eval(sub) -> None:
    p = _command(
        sub,
        "eval",
        "leaderboard evaluation of models and baselines on a suite (same as lanic-eval)",
        "Evaluate models on a suite; write results JSONs and the leaderboard (md, csv, png).",
        "lanic-hub eval --model runs/quickstart/model --suite phantom --out runs/eval",
    )
    from .evaluation.cli import add_arguments, run_from_args

    add_arguments(p)
    p.set_defaults(func=run_from_args)


def _parser_demo(sub) -> None:
    p = _command(
        sub,
        "demo",
        "launch the Gradio demo locally (the same app as the Space)",
        "Serve the demo: predictions, pattern contributions, pattern cards, what-ifs, search.",
        "lanic-hub demo --model runs/quickstart/model",
    )
    p.add_argument(
        "--model", default=None, help="model folder or repo id (default: $LANIC_MODEL or the quickstart's)"
    )
    p.add_argument("--port", type=int, default=None, help="server port (default: Gradio's 7860)")
    p.add_argument(
        "--share",
        action="store_true",
        help="also serve it on a temporary public gradio.live link (needs network; do not share "
        "models of credentialed data)",
    )
    p.set_defaults(func=cmd_demo)


def _parser_bench(sub) -> None:
    p = _command(
        sub,
        "bench",
        "run the benchmark suite (from a source checkout) and write docs/PERFORMANCE.md",
        "Run benchmarks/ (same as `python -m benchmarks`) from the repository root. Peers are\n"
        "compared when installed: pip install -e '.[bench]'. The whole suite takes ~15 min on 2 cores.",
        "lanic-hub bench            # or: lanic-hub bench peers ensemble",
    )
    p.add_argument("only", nargs="*", help="run only the benchmarks whose names contain these words")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    if not Path("benchmarks/__main__.py").is_file():
        raise ConfigError(
            f"no benchmarks/ folder in {Path.cwd()}: the suite lives in the source repository; "
            "run `lanic-hub bench` from its root"
        )
    sys.path.insert(0, str(Path.cwd()))
    from benchmarks.__main__ import main as bench_main

    return bench_main(list(args.only))


def main(argv: Sequence[str] | None = None) -> int:
    from .utils.progress import quiet_library_bars

    args = build_parser().parse_args(argv)
    quiet_library_bars()
    try:
        return int(args.func(args) or 0)
    except LicenceError as exc:  # its own exit code: scripts can tell "may not publish" apart
        print(f"lanic-hub {args.command}: refused: {exc}", file=sys.stderr)
        return 4
    except LanicError as exc:
        print(f"lanic-hub {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
