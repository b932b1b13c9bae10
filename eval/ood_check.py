"""The out-of-distribution guard's figures for a model: flagged shares among the NIH fixture
images, generated non-radiographs and held-out phantoms (lanic_hub.evaluation.ood).

    python eval/ood_check.py --model runs/quickstart/model --out docs/ood_check.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv=None) -> int:
    from lanic_hub import LanICModel
    from lanic_hub.evaluation.ood import ood_figures
    from lanic_hub.utils.fixtures import shared_data_dir

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="runs/quickstart/model")
    ap.add_argument("--nih", default=None, help="the NIH fixture folder (default: shared/data/cxr_real)")
    ap.add_argument("--out", default=None, help="write the figures here as JSON")
    args = ap.parse_args(argv)
    shared = shared_data_dir()
    nih = args.nih or (shared / "cxr_real" if shared else None)
    r = ood_figures(LanICModel.from_pretrained(args.model), nih)
    r["model"] = args.model
    text = json.dumps(r, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
