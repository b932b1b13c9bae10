"""The subcommands that write or publish a model folder: export, push, remove, space and
eval-results."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..utils.config_docs import add_dataclass_args, dataclass_from_args
from ._common import add_strict, command, health_exit


def parser_export(sub) -> None:
    from ..options import ModelOptions

    p = command(
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
    add_strict(p)
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from ..patterns import PatternBank
    from ..stages import BankHandle, ModelOptions, Run, bank_dataset, load_trained_handle, model_stage

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
    return health_exit(model.health, str(model.folder), args.strict)


def parser_push(sub) -> None:
    p = command(
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


def cmd_push(args: argparse.Namespace) -> int:
    if args.dataset is not None:
        from ..data.hub import dataset_upload_plan as plan
        from ..data.hub import push_dataset_folder as push

        folder, kind = Path(args.dataset), "dataset"
    else:
        from ..modeling import push_folder as push
        from ..modeling import upload_plan as plan

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


def parser_remove(sub) -> None:
    p = command(
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


def cmd_remove(args: argparse.Namespace) -> int:
    from ..modeling import LanICModel
    from ..removal import RemovalError
    from ..removal_io import choose_from_reference, concept_from_reference, write_changed_model

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


def parser_space(sub) -> None:
    p = command(
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


def cmd_space(args: argparse.Namespace) -> int:
    from ..space import write_space

    out = write_space(args.model, args.out, source=args.source, wheel=args.wheel, title=args.title)
    print(f"Space folder written to {out}: {', '.join(sorted(p.name for p in out.iterdir()))}")
    print(f"create a Gradio Space and upload it: hf upload --repo-type space YOUR-NAME/SPACE {out} .")
    return 0


def parser_eval_results(sub) -> None:
    p = command(
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


def cmd_eval_results(args: argparse.Namespace) -> int:
    from ..evaluation.hub_results import write_hub_eval_results

    for p in write_hub_eval_results(args.results, args.model, args.benchmark, args.source_url):
        print(f"wrote {p}")
    return 0
