"""lanic_accuracy: per-finding and macro AUROC with bootstrap 95% CI, AUPRC, F1 and ECE.

>>> import evaluate
>>> m = evaluate.load("eval/metrics/lanic_accuracy")           # doctest: +SKIP
>>> m.compute(predictions=logits, references=labels)           # doctest: +SKIP

``predictions``: one list of C scores (logits) per image. ``references``: one list of C labels
per image, 1 / 0, or -1 for "not labelled" (left out, as under U-Ignore).
"""

import evaluate
import numpy as np

from lanic_hub.evaluation import metrics as M


class LanicAccuracy(evaluate.Metric):
    def _info(self):
        info = M.metric_info(__doc__)
        info.inputs_description = "predictions: (N, C) logits; references: (N, C) labels in {1, 0, -1}"
        return info

    def _compute(self, predictions, references, n_boot: int = 200, seed: int = 0, thresholds=None):
        s = np.asarray(predictions, dtype=float)
        y = np.asarray(references)
        mask = y >= 0
        y = np.where(mask, y, 0)
        p = 1 / (1 + np.exp(-s))
        out = {
            "auroc": M.auroc_with_ci(y, s, mask, n_boot=n_boot, seed=seed),
            "auprc": M.auprc(y, s, mask),
            "ece": M.expected_calibration_error(y, p, mask),
        }
        if thresholds is not None:
            out["f1"] = M.f1_at(y, p, list(thresholds), mask)
        return out
