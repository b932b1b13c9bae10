"""Compare training variants (image-only TopK, multimodal stream, JumpReLU) on one embedded dataset.

    lanic-hub quickstart                       # once: phantoms, phantom CLIP, embeddings
    python eval/compare_training_variants.py   # ~6 min on 2 CPU cores at T = 100

Each variant is trained, gets its pattern bank, and is measured on the test split's images; the
table goes to runs/variants/variants.md (and .json). See lanic_hub.evaluation.variants.
"""

from __future__ import annotations

import argparse

from lanic_hub.evaluation.variants import compare_variants


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--embeddings", default="runs/quickstart/embeddings", help="folder from `lanic-hub embed`"
    )
    ap.add_argument("--out", default="runs/variants", help="one folder per variant, and the table")
    ap.add_argument("--members", type=int, default=None, help="ensemble size T (default: the preset's 100)")
    args = ap.parse_args()
    compare_variants(args.embeddings, args.out, n_members=args.members)
    print(open(f"{args.out}/variants.md").read())


if __name__ == "__main__":
    main()
