"""lanic_monosemanticity: the MonoSemanticity score (Pach et al., 2025) of every column.

``predictions``: one list of M activations per image (non-negative); ``references``: the image's
embedding from an encoder (normalised here). Exact, linear in the number of images:
``MS = Σ_{n<m} ã_n ã_m ê_n·ê_m / Σ_{n<m} ã_n ã_m`` with min-max scaled activations ``ã``.
"""

import evaluate
import numpy as np
import torch

from lanic_hub.evaluation import metrics as M
from lanic_hub.patterns.scores import ms_scores


class LanicMonosemanticity(evaluate.Metric):
    def _info(self):
        return M.metric_info(
            __doc__, citation="Pach et al. 2025, Sparse autoencoders learn monosemantic features in VLMs"
        )

    def _compute(self, predictions, references):
        a = torch.as_tensor(np.asarray(predictions, float))
        e = torch.nn.functional.normalize(torch.as_tensor(np.asarray(references, float)), dim=1)
        ms = ms_scores(a, e).numpy()
        return {
            "ms": ms.tolist(),
            "ms_median": float(np.nanmedian(ms)) if np.any(~np.isnan(ms)) else float("nan"),
        }
