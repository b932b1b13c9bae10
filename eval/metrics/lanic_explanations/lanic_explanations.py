"""lanic_explanations: completeness and coverage of explanations.

``predictions``: for each prediction, its parts ``[bias, error, c_1, ..., c_K]`` (pattern and
unbanked-latent contributions; pad with zeros); ``references``: the model's logit. Returns the
completeness error (max |Σ parts - logit|, ~0 for an exact decomposition) and, per prediction,
the fewest contributions holding ``coverage`` (0.9) of the absolute contribution mass.
"""

import evaluate
import numpy as np

from lanic_hub.evaluation import metrics as M


class LanicExplanations(evaluate.Metric):
    def _info(self):
        return M.metric_info(__doc__, references="value")

    def _compute(self, predictions, references, coverage: float = 0.9):
        parts = np.asarray(predictions, float)
        logit = np.asarray(references, float)
        contrib = np.sort(np.abs(parts[:, 2:]), axis=1)[:, ::-1]
        cum = np.cumsum(contrib, axis=1)
        n = (cum < coverage * cum[:, -1:]).sum(1) + 1
        n = np.where(cum[:, -1] > 0, n, 0)
        return {
            "completeness_error_max": float(np.abs(parts.sum(1) - logit).max()),
            "n_cover": n.tolist(),
            "n_cover_summary": M.summary(n.astype(float)),
        }
