"""The ``lanic-hub`` command line. Every command is a thin wrapper over a library function."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .errors import LanicError


def _fmt(desc: str, example: str) -> dict:
    return {
        "description": desc,
        "epilog": f"example:\n  {example}",
        "formatter_class": argparse.RawDescriptionHelpFormatter,
    }


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
    p.add_argument("--label-noise", type=float, default=0.0, help="report flip rate (default 0)")
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
    )
    for k, v in paths.items():
        print(f"{k}: {v}")
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from .data.phantom import generate
    from .data.phantom.preview import label_summary, preview_grid

    studies = list(generate(args.n, args.seed, _phantom_config(args), num_proc=args.num_proc))
    out = Path(args.out)
    grid = preview_grid(studies[: args.grid], out / "phantom_preview.png", cols=args.cols)
    (out / "label_summary.md").write_text(label_summary(studies))
    print(f"preview grid: {grid}\nlabel summary: {out / 'label_summary.md'}")
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    """The main job on the embedded default. Today: phantoms, their preview and label summary."""
    from .data.phantom import export, generate
    from .data.phantom.preview import label_summary, preview_grid

    out = Path(args.out)
    t0 = time.perf_counter()
    cfg = _phantom_config(args)
    studies = list(generate(args.n, args.seed, cfg, num_proc=args.num_proc))
    paths = export(out / "phantoms", args.n, args.seed, cfg, studies=studies)
    t1 = time.perf_counter()
    grid = preview_grid(studies[:16], out / "phantom_preview.png")
    summary = label_summary(studies)
    (out / "label_summary.md").write_text(summary)
    t2 = time.perf_counter()
    print("\n" + summary)
    print(
        json.dumps(
            {
                "phantoms_s": round(t1 - t0, 1),
                "preview_and_summary_s": round(t2 - t1, 1),
                **{k: str(v) for k, v in paths.items()},
                "preview": str(grid),
            },
            indent=1,
        )
    )
    print("\nNext stages (backbone, classifier, transcoder ensemble, patterns) are not built yet.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="lanic-hub", description="CXR-LanIC toolkit. Research software, not a medical device."
    )
    from . import __version__

    ap.add_argument("--version", action="version", version=__version__)
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "phantom",
        help="generate a phantom dataset (HF datasets + MIMIC-CXR-JPG layout)",
        **_fmt(
            "Generate phantom chest radiographs with ground truth, reports and labels.",
            "lanic-hub phantom --n 1000 --seed 0 --out runs/phantoms",
        ),
    )
    _add_phantom_args(p, 1000)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--formats", nargs="+", default=["hf", "mimic"], choices=["hf", "mimic"])
    p.set_defaults(func=cmd_phantom)

    p = sub.add_parser(
        "preview",
        help="write a labelled preview grid and a label summary",
        **_fmt(
            "Render phantoms with their ground-truth factors written under each.",
            "lanic-hub preview --n 500 --grid 16 --out docs",
        ),
    )
    _add_phantom_args(p, 500)
    p.add_argument("--grid", type=int, default=16, help="images in the grid (default 16)")
    p.add_argument("--cols", type=int, default=4, help="grid columns (default 4)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_preview)

    p = sub.add_parser(
        "quickstart",
        help="run the main job on the embedded default (phantom world)",
        **_fmt(
            "Run the whole pipeline on the embedded phantom world.",
            "lanic-hub quickstart --out runs/quickstart",
        ),
    )
    _add_phantom_args(p, 2000)
    p.add_argument("--out", default="runs/quickstart", help="output folder (default runs/quickstart)")
    p.set_defaults(func=cmd_quickstart)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LanicError as exc:
        print(f"lanic-hub {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
