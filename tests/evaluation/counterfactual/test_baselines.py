"""The baselines: trained on their own phantom split, each explaining its own logits exactly."""

from __future__ import annotations

import torch

from lanic_hub import LanICModel
from lanic_hub.data.phantom import PhantomConfig
from lanic_hub.evaluation.counterfactual.baselines import baseline_attributors
from lanic_hub.evaluation.counterfactual.metrics import pair_changes
from lanic_hub.evaluation.counterfactual.pairs import CounterfactualConfig


def test_every_baseline_splits_its_own_logit_change_exactly(tiny_lanic_model, tmp_path):
    m = LanICModel.from_pretrained(tiny_lanic_model)
    cfg = CounterfactualConfig(assign_n=120, baseline_n=120, num_proc=1)
    atts = baseline_attributors(m, tmp_path, cfg, PhantomConfig(), 2, progress=False, log=lambda *a: None)
    assert [a.name for a in atts] == [
        "raw latents (no merging)",
        "single TopK transcoder",
        "plain TopK ensemble",
        "JumpReLU ensemble",
        "SAE + sparse probe",
    ]
    g = torch.Generator().manual_seed(0)
    e = torch.nn.functional.normalize(torch.randn(40, m.config.d_in, generator=g), dim=1)
    for a in atts:
        dl, di, dr = pair_changes(a, e[:20], e[20:])
        total = di.sum(1) + sum(dr.values(), torch.zeros_like(dl))
        assert torch.allclose(total, dl, atol=1e-4), (a.name, (total - dl).abs().max())
        assert len(a.concepts) == di.shape[1] == a.activations(e[:3]).shape[1], a.name
    # the raw latents explain the model's own logits (its classifier), not a retrained one
    raw = atts[0].parts(e[:5]).logits
    assert torch.allclose(raw, m.classifier(e[:5]), atol=1e-5)
    # the baselines' splits were exported and embedded once, under the output folder
    assert len(list((tmp_path / "cache").glob("phantoms-120-*"))) == 2
