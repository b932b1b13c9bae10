"""The leaderboard in markdown, from results the suite's own functions wrote."""

from __future__ import annotations

import torch

from lanic_hub.data.phantom import ALL_FACTORS, PhantomConfig
from lanic_hub.evaluation.counterfactual.metrics import evaluate_method
from lanic_hub.evaluation.counterfactual.pairs import CounterfactualConfig, Pair
from lanic_hub.evaluation.counterfactual.report import SUITE, markdown
from lanic_hub.evaluation.counterfactual.suite import _results_doc

from .planted import Planted


def _doc(name: str, kind: str, item_factor: list[str]) -> dict:
    n = 8
    base = torch.randn(n, 4, generator=torch.Generator().manual_seed(0))
    on, off = base.clone(), base.clone()
    on[:, 0], off[:, 0] = 2.0, 0.0
    pairs = [Pair(i, "chest_tube") for i in range(n)]
    cfg = CounterfactualConfig()
    res = evaluate_method(Planted(), on, off, pairs, item_factor, cfg)
    res.update(method=name, items=2, named_items=2, items_with_a_factor=2, embedding={})
    return _results_doc(name, kind, res, cfg, PhantomConfig(), pairs, "hf:assign", 1.0)


def test_one_row_per_method_and_a_factor_table_for_the_model_only():
    docs = [_doc("model", "lanic", ["chest_tube", "edema"]), _doc("baseline", "baseline", ["edema", "edema"])]
    md = markdown(docs).splitlines()
    assert md[0] == f"# Leaderboard: suite `{SUITE}`"
    # chest tube is the only factor with pairs, so the only one judged; the planted item passes
    # where its factor is chest tube, and the same change on an edema item does not
    summary = [line for line in md if line.startswith("| model | 1 / 1 | 1.000 | 1.000 |")]
    assert len(summary) == 1, md
    assert any(line.startswith("| baseline | 0 / 1 | 0.000 |") for line in md), md
    # the per-factor table: the model's only (kind 'lanic'), a row per factor, '-' where unmeasured
    assert sum(line.startswith("Per factor, ") for line in md) == 1
    factor_rows = [line for line in md if line.split(" | ")[0][2:] in ALL_FACTORS]
    assert len(factor_rows) == len(ALL_FACTORS)
    tube = next(line for line in factor_rows if line.startswith("| chest_tube |"))
    assert "**yes**" in tube
    edema = next(line for line in factor_rows if line.startswith("| edema |"))
    assert "| 0 | " in edema and edema.count(" - ") >= 5  # no pairs: every share unmeasured


def test_no_results_no_leaderboard():
    assert markdown([]) == ""
