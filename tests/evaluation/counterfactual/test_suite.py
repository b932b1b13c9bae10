"""The suite end to end: every method's results file and the leaderboard, on the tiny model."""

from __future__ import annotations

import json

from lanic_hub import LanICModel
from lanic_hub.data.phantom import ALL_FACTORS
from lanic_hub.evaluation.counterfactual import SUITE, CounterfactualConfig, run_counterfactual_suite


def test_the_suite_end_to_end_with_baselines(tiny_lanic_model, tmp_path):
    cfg = CounterfactualConfig(pairs_per_factor=2, assign_n=120, baseline_n=120, num_proc=1)
    r = run_counterfactual_suite(
        [str(tiny_lanic_model)], tmp_path, cfg=cfg, baseline_members=2, progress=False, log=lambda *a: None
    )
    docs = [json.loads(open(p).read()) for p in r["written"]]
    methods = {d["metrics"]["counterfactual"]["method"] for d in docs}
    has_concepts = LanICModel.from_pretrained(tiny_lanic_model).concepts is not None
    assert methods == {
        "LanIC model (bank patterns)",
        *(["LanIC model (report concepts)"] if has_concepts else []),
        "ceiling: ground-truth concept directions",
        "raw latents (no merging)",
        "single TopK transcoder",
        "plain TopK ensemble",
        "JumpReLU ensemble",
        "SAE + sparse probe",
    }
    for d in docs:
        m = d["metrics"]["counterfactual"]
        assert set(m["factors"]) == set(ALL_FACTORS) and all(v["pairs"] == 2 for v in m["factors"].values())
        assert d["dataset"]["rows"] == 4 * len(ALL_FACTORS) and d["suite"] == SUITE
    md = (tmp_path / "leaderboard" / f"{SUITE}.md").read_text()
    assert (
        "factors passing / judged" in md and "probe AUROC on e" in md and "devices share / signed / hit" in md
    )
    for d in docs:
        groups = d["metrics"]["counterfactual"]["groups"]
        assert set(groups) == {"findings", "devices", "artifacts", "all"}
    assert sum(line.startswith("| ") for line in md.splitlines()) >= 6 + len(ALL_FACTORS)
