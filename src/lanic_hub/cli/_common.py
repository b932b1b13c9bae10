"""What every subcommand shares: a subcommand with its example, --strict and the health exit,
the phantom world's flags, and the process group of a member-parallel run."""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager


def command(sub, name: str, help: str, desc: str, example: str) -> argparse.ArgumentParser:  # noqa: A002
    """A subcommand whose --help shows its description and a runnable example."""
    return sub.add_parser(
        name,
        help=help,
        description=desc,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_strict(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit with code 3 when a health check fails (the figures of an unusable model)",
    )


def health_exit(checks: list[dict], where: str, strict: bool) -> int:
    """Print the failed health checks loudly (stderr); exit code 3 for them under --strict."""
    from ..health import failed, format_warning

    if failed(checks):
        print(format_warning(checks, where), file=sys.stderr)
        return 3 if strict else 0
    return 0


@contextmanager
def distributed(backend: str):
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


def phantom_config(args: argparse.Namespace):
    from ..data.phantom import PhantomConfig, ShortcutSpec

    return PhantomConfig(
        image_size=args.size,
        label_noise=args.label_noise,
        shortcuts=tuple(ShortcutSpec.parse(s) for s in args.shortcut),
    )


def add_phantom_args(p: argparse.ArgumentParser, n: int) -> None:
    p.add_argument("--n", type=int, default=n, help=f"number of images (default {n})")
    p.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    p.add_argument("--size", type=int, default=224, help="image side in pixels (default 224)")
    from ..data.phantom import PhantomConfig

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
