"""What the members buy: the first 1, 10, 30 and 100 members of one trained model, side by side.

    python -m benchmarks paper_shape     # once: the T = 100 paper-shape model (hours on 2 cores)
    python eval/compare_sub_ensembles.py --model runs/paper-shape/build/model \\
        --embeddings runs/paper-shape/build/embeddings --data "mimic:R?reports=R"

Each sub-ensemble gets its own pattern bank (the support kept the same share of its members),
is measured on the test split, and its members' two halves are compared for the patterns they
both find. The table goes to OUT/sub_ensembles.md (and .json). See
lanic_hub.evaluation.sub_ensembles.
"""

from __future__ import annotations

import argparse

from lanic_hub.evaluation.sub_ensembles import compare_sub_ensembles


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a LanIC model folder (save_pretrained / lanic-hub build)")
    ap.add_argument("--embeddings", required=True, help="the embeddings folder of --data (lanic-hub embed)")
    ap.add_argument("--data", required=True, help="the dataset spec the embeddings were made from")
    ap.add_argument("--members", default="1,10,30,100", help="comma-separated sub-ensemble sizes")
    ap.add_argument("--suite", default="mimic-cxr", help="the suite whose metrics are used")
    ap.add_argument("--out", default="runs/sub-ensembles", help="folder for the table")
    args = ap.parse_args()
    members = tuple(int(x) for x in args.members.split(",") if x.strip())
    compare_sub_ensembles(args.model, args.data, args.embeddings, args.out, members=members, suite=args.suite)
    print(open(f"{args.out}/sub_ensembles.md").read())


if __name__ == "__main__":
    main()
