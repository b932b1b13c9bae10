"""A planted method for the metric tests: its items are known coordinates of e."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from lanic_hub.evaluation.counterfactual.attribution import Parts


@dataclass
class Planted:
    """A method whose item 0 is exactly the factor (coordinate 0 of e), item 1 another coordinate;
    its logit is their sum: a planted single-factor pattern."""

    name: str = "planted"
    concepts: list = field(default_factory=lambda: ["chest_tube", "edema"])

    def parts(self, e: torch.Tensor) -> Parts:
        items = torch.stack([e[:, 0], 0.1 * e[:, 1]], 1).unsqueeze(-1).expand(-1, -1, 5)
        return Parts(items.sum(1), items.clone(), {"error": 0.01 * e[:, 2:3].expand(-1, 5)})

    def activations(self, e: torch.Tensor) -> torch.Tensor:
        return e[:, :2]
