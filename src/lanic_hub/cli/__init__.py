"""The ``lanic-hub`` command line. Every command is a thin wrapper over a library function.

One module per job: :mod:`.build` (the subcommands that build a model), :mod:`.publish` (those
that write or publish a model folder), :mod:`.use` (those that use one), :mod:`._common` (what
they share). ``build_parser`` lists the subcommands in the order ``--help`` shows them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import LanicError, LicenceError
from .build import (
    parser_backbone,
    parser_build,
    parser_embed,
    parser_patterns,
    parser_phantom,
    parser_preview,
    parser_quickstart,
    parser_train,
)
from .publish import parser_eval_results, parser_export, parser_push, parser_remove, parser_space
from .use import parser_bench, parser_demo, parser_eval, parser_explain

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="lanic-hub", description="CXR-LanIC toolkit. Research software, not a medical device."
    )
    from ..constants import VERSION as __version__

    ap.add_argument("--version", action="version", version=__version__)
    sub = ap.add_subparsers(dest="command", required=True)
    for add in (
        parser_phantom,
        parser_preview,
        parser_quickstart,
        parser_build,
        parser_export,
        parser_push,
        parser_remove,
        parser_space,
        parser_eval_results,
        parser_backbone,
        parser_embed,
        parser_train,
        parser_patterns,
        parser_explain,
        parser_eval,
        parser_demo,
        parser_bench,
    ):
        add(sub)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    from ..utils.progress import quiet_library_bars

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
