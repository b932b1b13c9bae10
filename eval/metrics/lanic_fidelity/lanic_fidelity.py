"""lanic_fidelity: how well the ensemble path reproduces the classifier's logits.

``predictions``: the ensemble path's logits, one list of C per image; ``references``: the
classifier's logits. Returns the per-finding R² and the mean absolute logit gap.
"""

import evaluate
import numpy as np

from lanic_hub.evaluation import metrics as M


class LanicFidelity(evaluate.Metric):
    def _info(self):
        return M.metric_info(__doc__)

    def _compute(self, predictions, references):
        a, r = np.asarray(predictions, float), np.asarray(references, float)
        return {"logit_r2": M.logit_r2(r, a), "mean_abs_logit_gap": np.abs(a - r).mean(0).tolist()}
