"""LanICConfig: what config.json says, and the configs it refuses."""

from __future__ import annotations

import pytest

from lanic_hub import LanICConfig
from lanic_hub.errors import ConfigError
from lanic_hub.modeling import AUTO_MAP, LANIC_FORMAT
from lanic_hub.transcoders import TranscoderConfig


def test_a_config_round_trips_through_its_dict_with_the_hub_fields():
    tc = TranscoderConfig(d_in=12, d_out=7, n_latents=16, k=4, n_members=3)
    cfg = LanICConfig(d_in=12, hidden=7, ensemble=tc.to_dict(), n_patterns=5, findings=["A", "B"])
    back = LanICConfig(
        **{k: v for k, v in cfg.to_dict().items() if k not in ("model_type", "transformers_version")}
    )
    assert back.ensemble == tc.to_dict() and back.findings == ["A", "B"] and back.n_patterns == 5
    # what transformers reads from a repo id alone: labels, multi-label scoring, the remote classes
    assert back.id2label == {0: "A", 1: "B"} and back.problem_type == "multi_label_classification"
    assert back.auto_map == AUTO_MAP and back.lanic_format == LANIC_FORMAT
    assert back.buffer_shapes() == {"latent_pattern": (48,), "pattern_direction": (5, 12)}


def test_configs_that_do_not_make_a_model_are_refused():
    tc = TranscoderConfig(d_in=12, d_out=7, n_latents=16, k=4, n_members=3)
    with pytest.raises(ConfigError, match="must agree"):
        LanICConfig(d_in=12, hidden=8, ensemble=tc.to_dict())
    with pytest.raises(ConfigError, match="at least one finding"):
        LanICConfig(d_in=12, hidden=7, ensemble=tc.to_dict(), findings=[])
