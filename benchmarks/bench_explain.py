"""Explain latency at the phantom preset and at paper shape, from cached embeddings.

A LanIC model with random weights (``LanICModel.from_components``) and a bank of one pattern per
``support`` consecutive alive latents: the shapes are the real ones (d = 512, H = 256; phantom
preset T = 100, L = 256, k = 8; paper shape T = 100, L = 2048, k = 32), the values do not matter
for the time. Timed: ``model.explain_embeddings`` on 1 and on 32 embeddings, the median of several
calls after one warm-up call; and, side by side in the same run, the same call with the model's
explain caches dropped before each call (what every call cost before issue 20 cached the logit
weights and the bank on the model).

    python -m benchmarks explain

The "before" rows of docs/PERFORMANCE.md come from running this file against an older checkout
(``PYTHONPATH=<checkout>/src python benchmarks/bench_explain.py benchmarks/results/explain_before.json``).
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

SHAPES = {
    "phantom preset": {"n_latents": 256, "k": 8, "n_members": 100, "patterns": 160},
    "paper shape": {"n_latents": 2048, "k": 32, "n_members": 100, "patterns": 5000},
}
D_IN, HIDDEN = 512, 256


def random_model(n_latents: int, k: int, n_members: int, patterns: int, seed: int = 0):
    """A LanIC model of the given shape with random weights and a synthetic bank."""
    from lanic_hub.classifier import DiagnosticClassifier
    from lanic_hub.modeling import LanICModel
    from lanic_hub.patterns import PatternBank
    from lanic_hub.records import BankMeta
    from lanic_hub.transcoders import TranscoderConfig, TranscoderEnsemble

    try:
        from lanic_hub.patterns import Pattern
        from lanic_hub.transcoders.ensemble import ensemble_fingerprint

        record = Pattern.from_dict
    except ImportError:  # a checkout from before issue 20 (for the before/after rows)
        from lanic_hub.training import ensemble_fingerprint

        record = dict

    torch.manual_seed(seed)
    clf = DiagnosticClassifier(D_IN, HIDDEN, 5).eval()
    ens = TranscoderEnsemble(TranscoderConfig(D_IN, HIDDEN, n_latents=n_latents, k=k, n_members=n_members))
    ens.eval()
    M = n_members * n_latents
    support = 5
    owner = torch.full((M,), -1, dtype=torch.long)
    chosen = torch.randperm(M, generator=torch.Generator().manual_seed(seed))[: patterns * support]
    owner[chosen] = torch.arange(patterns).repeat_interleave(support)
    pats = [
        record(
            {
                "id": p,
                "name": f"pattern {p}",
                "category": "pulmonary",
                "ms": 0.5,
                "support": support,
                "members": [
                    [int(j) // n_latents, int(j) % n_latents] for j in chosen[p * support : (p + 1) * support]
                ],
                "gallery": [{"row": 0, "activation": 1.0}],
                "confidence": 0.5,
            }
        )
        for p in range(patterns)
    ]
    bank = PatternBank(
        owner, torch.zeros(patterns, D_IN), {}, pats, BankMeta(ensemble_fingerprint=ensemble_fingerprint(ens))
    )
    return LanICModel.from_components(clf, ens, bank)


def random_concepts(d: int = D_IN, K: int = 15, seed: int = 0):
    """Concept directions of the report concepts' count (15 on the phantom world), random."""
    from lanic_hub.patterns.concepts import ConceptDirections

    g = torch.Generator().manual_seed(seed)
    B = torch.randn(K, d, generator=g) / d**0.5
    support = [
        {"key": f"c{j}", "name": f"concept {j}", "auroc": 0.9, "positives": 10, "named": True}
        for j in range(K)
    ]
    return ConceptDirections(
        tuple(f"c{j}" for j in range(K)),
        torch.randn(d, generator=g) / d**0.5,
        B,
        torch.linalg.pinv(B),
        support,
    )


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def _row(model, e: torch.Tensor, repeats: int) -> dict:
    warm = _median_seconds(lambda: model.explain_embeddings(e), repeats)
    row = {"warm_ms": round(1000 * warm, 2)}
    if hasattr(model, "drop_explain_cache"):

        def cold():
            model.drop_explain_cache()
            model.explain_embeddings(e)

        row["caches_dropped_ms"] = round(1000 * _median_seconds(cold, repeats), 2)
        row["ratio_dropped_over_warm"] = round(row["caches_dropped_ms"] / row["warm_ms"], 2)
    return row


def main() -> dict:
    out: dict = {
        "measured_on": "random-weight models of the real shapes (d = 512, H = 256, 5 findings), "
        "random unit embeddings; median of repeated calls after one warm-up call",
        "threads": torch.get_num_threads(),
    }
    for shape, s in SHAPES.items():
        model = random_model(**s)
        for batch in (1, 32):
            g = torch.Generator().manual_seed(1)
            e = torch.nn.functional.normalize(torch.randn(batch, D_IN, generator=g), dim=1)
            repeats = 7 if s["n_latents"] <= 256 else 5
            row = _row(model, e, repeats)
            if hasattr(model, "concepts"):  # the concept split, side by side in the same run
                for attribution in ("linear", "shapley"):
                    model.concepts = random_concepts()
                    model.concepts.attribution = attribution
                    ms = 1000 * _median_seconds(partial(model.explain_embeddings, e), repeats)
                    row[f"concepts_{attribution}_ms"] = round(ms, 2)
                    row[f"ratio_concepts_{attribution}_over_patterns"] = round(ms / row["warm_ms"], 2)
                model.concepts = None
            out[f"{shape}, batch {batch}"] = row
            print(
                f"explain, {shape} (T={s['n_members']}, L={s['n_latents']}, k={s['k']}), batch {batch}: {row}"
            )
        del model
    return out


if (
    __name__ == "__main__"
):  # the "before" rows: PYTHONPATH=<old checkout>/src python benchmarks/bench_explain.py OUT
    import json
    import subprocess
    import sys

    res = main()
    src = Path(__import__("lanic_hub").__file__).parent
    commit = subprocess.run(
        ["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    res["code"] = f"lanic-hub at {commit.stdout.strip() or src}"
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(json.dumps(res, indent=1))
