"""The subcommands that use a model or the checkout: explain, eval, demo and bench."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from ..errors import ConfigError
from ._common import command


def parser_explain(sub) -> None:
    p = command(
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


def cmd_explain(args: argparse.Namespace) -> int:
    from ..modeling import LanICModel

    folder = Path(args.model)
    if (folder / "config.json").is_file() or not folder.exists():  # a model folder or a Hub repo id
        model = LanICModel.from_pretrained(args.model)
    else:  # a `lanic-hub train` + `lanic-hub patterns` folder
        model = LanICModel.from_training_folder(folder)
    if args.backbone:
        from ..stages import resolve_backbone_spec

        model.config.backbone = {"spec": resolve_backbone_spec(args.backbone), "revision": None}
        model.config.bundled_backbone = False
    for e in model.explain_batch(list(args.images)):
        print(json.dumps(e.to_dict(), indent=1) if args.json else e.render(top=args.top))
    return 0


def parser_eval(sub) -> None:
    p = command(
        sub,
        "eval",
        "leaderboard evaluation of models and baselines on a suite (same as lanic-eval)",
        "Evaluate models on a suite; write results JSONs and the leaderboard (md, csv, png).",
        "lanic-hub eval --model runs/quickstart/model --suite phantom --out runs/eval",
    )
    from ..evaluation.cli import add_arguments, run_from_args

    add_arguments(p)
    p.set_defaults(func=run_from_args)


def parser_demo(sub) -> None:
    p = command(
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


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import launch

    launch(args.model, port=args.port, share=args.share)
    return 0


def parser_bench(sub) -> None:
    p = command(
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
    # the suite is the checkout's own package: run it as `python -m benchmarks` there, in its own
    # process, rather than put the working directory on this process's import path
    return subprocess.run([sys.executable, "-m", "benchmarks", *args.only], check=False).returncode
