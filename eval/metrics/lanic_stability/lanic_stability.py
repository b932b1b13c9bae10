"""lanic_stability: Hungarian-matched decoder similarity between two transcoder members.

``predictions``: member A's decoder rows (one list of H per latent); ``references``: member B's.
Returns the mean cosine of the best one-to-one matching (1.0: the same dictionary up to order).
"""

import evaluate
import numpy as np

from lanic_hub.evaluation import metrics as M


class LanicStability(evaluate.Metric):
    def _info(self):
        return M.metric_info(__doc__)

    def _compute(self, predictions, references):
        return {
            "hungarian_similarity": M.hungarian_similarity(np.asarray(predictions), np.asarray(references))
        }
