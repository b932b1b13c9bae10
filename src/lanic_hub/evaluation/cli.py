"""``lanic-eval`` (also ``lanic-hub eval``): evaluate models on a suite and rebuild the leaderboard."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ..constants import PHANTOM_N
from ..errors import LanicError
from ..presets import PRESETS

#: The ensemble size of the phantom preset (the shortcut suite's default).
PRESET_T = PRESETS["phantom"]["ensemble"]["n_members"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .names import SUITES

    p.add_argument("--model", action="append", default=[], help="model folder or Hub repo id (repeatable)")
    p.add_argument(
        "--suite",
        default="phantom",
        choices=(*SUITES, "phantom-shortcut", "phantom-counterfactual"),
        help="default: phantom (offline). phantom-shortcut builds its own two models (no --model); "
        "phantom-counterfactual renders each factor on and off and asks whether the explanations put "
        "the change on that factor's patterns",
    )
    p.add_argument(
        "--baseline-members",
        type=int,
        default=None,
        help="phantom-counterfactual: members of the plain-TopK and JumpReLU baseline ensembles "
        "(default: as many as the model)",
    )
    p.add_argument("--shortcut", default=None, help="phantom-shortcut: factor:Finding:strength:splits")
    p.add_argument(
        "--n",
        type=int,
        default=None,
        help=f"phantom suites: phantoms per world (default {PHANTOM_N}); phantom-counterfactual: pairs "
        "per factor (40)",
    )
    p.add_argument(
        "--members", type=int, default=None, help=f"phantom-shortcut: ensemble size (default {PRESET_T})"
    )
    p.add_argument(
        "--seeds",
        default=None,
        help="phantom-shortcut: world seeds, comma-separated (e.g. 0,1,2), each its own pair of worlds; "
        "the removal table is then summarised over them (default: --seed alone)",
    )
    p.add_argument(
        "--test-n",
        type=int,
        default=None,
        help="phantom-shortcut: fresh decoupled and anti-coupled test phantoms for the removal table "
        "(default 5000 each)",
    )
    p.add_argument("--no-removal", action="store_true", help="phantom-shortcut: the explanation table only")
    p.add_argument(
        "--redo",
        action="store_true",
        help="phantom-shortcut: measure every seed again (default: a seed already measured with the same "
        "settings is reused)",
    )
    p.add_argument("--out", default="runs/eval", help="results and leaderboard folder (default runs/eval)")
    p.add_argument(
        "--data",
        default=None,
        help="dataset path for the mimic-cxr / chexpert / nih suites; a dataset spec for the 'data' suite "
        "(hf:PATH, folder:ROOT?csv=FILE&..., see lanic_hub.data.open)",
    )
    p.add_argument("--no-baselines", action="store_true", help="evaluate the models only")
    p.add_argument(
        "--bootstrap", type=int, default=200, help="bootstrap resamples for AUROC CIs (default 200)"
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the bootstrap resamples and the baselines' training (default 0); the phantom "
        "suites' data seed is fixed",
    )


def run_from_args(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import ConfigError
    from .runner import run

    if args.suite == "phantom-shortcut":
        from ..smoke import phantoms
        from .shortcut import DEFAULT_SHORTCUT, markdown, run_shortcut_suite

        seeds = None
        if args.seeds:
            try:
                seeds = tuple(int(x) for x in args.seeds.split(","))
            except ValueError as exc:
                raise ConfigError(f"--seeds {args.seeds!r}: expected integers, e.g. 0,1,2") from exc
        r = run_shortcut_suite(
            Path(args.out) / "phantom-shortcut",
            shortcut=args.shortcut or DEFAULT_SHORTCUT,
            n=args.n or phantoms(PHANTOM_N),
            seed=args.seed,
            seeds=seeds,
            members=args.members,
            removal=not args.no_removal,
            test_n=args.test_n or phantoms(5000),
            pairs=phantoms(200),
            resume=not args.redo,
        )
        print(markdown(r))
        return 0
    if not args.model:
        raise ConfigError(f"suite {args.suite!r} evaluates models: give at least one --model")
    if args.suite == "phantom-counterfactual":
        from dataclasses import replace

        from .counterfactual import CounterfactualConfig, run_counterfactual_suite

        cf = (
            CounterfactualConfig()
            if args.n is None
            else replace(CounterfactualConfig(), pairs_per_factor=args.n)
        )
        r = run_counterfactual_suite(
            args.model,
            args.out,
            cfg=cf,
            baselines=not args.no_baselines,
            baseline_members=args.baseline_members,
        )
        print(json.dumps(r, indent=1))
        print("\n" + Path(r["leaderboard"]["markdown"]).read_text())
        return 1 if r["failed"] else 0
    res = run(
        args.model,
        args.suite,
        args.out,
        data=args.data,
        baselines=not args.no_baselines,
        n_boot=args.bootstrap,
        seed=args.seed,
        phantom_n=args.n,
    )
    print(json.dumps(res, indent=1))
    md = res["leaderboard"]["markdown"]
    print("\n" + open(md).read())  # noqa: SIM115
    return 1 if res["failed"] else 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="lanic-eval",
        description="Leaderboard-style evaluation of LanIC models and baselines.",
        epilog="example:\n  lanic-eval --model runs/quickstart/model --suite phantom --out runs/eval",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    args = p.parse_args(argv)
    from ..utils.progress import quiet_library_bars

    quiet_library_bars()
    try:
        return run_from_args(args)
    except LanicError as exc:
        print(f"lanic-eval: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
