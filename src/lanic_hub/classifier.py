"""The diagnostic classifier: ``e -> h = ReLU(W1 e + b1) -> logits = W2 h + b2`` (5 findings).

Trained with multi-label BCE under an uncertainty policy (U-Ignore masks uncertain labels out),
optional class balancing, and early stopping on validation macro AUROC. Its hidden layer ``h`` is
what the transcoder ensemble learns to reproduce.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .constants import FINDINGS
from .errors import ConfigError, DataError
from .utils.progress import tqdm


@dataclass(frozen=True)
class ClassifierConfig:
    """How the classifier is trained."""

    hidden: int = 256
    """Width H of the hidden layer the transcoders reproduce."""
    lr: float = 1e-3
    """AdamW learning rate."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    batch_size: int = 256
    """Training rows per optimiser step."""
    max_epochs: int = 200
    """Upper bound on epochs (early stopping on the validate split usually ends sooner)."""
    patience: int = 20
    """Epochs without a better validation macro AUROC before stopping."""
    class_balance: bool = False
    """Weight positives by (negatives / positives) per finding."""
    seed: int = 0
    """Seed of the initial weights and of the batch order."""

    def __post_init__(self) -> None:
        if self.hidden < 1 or self.batch_size < 1 or self.max_epochs < 1 or self.lr <= 0:
            raise ConfigError(f"invalid classifier config {self}")


class DiagnosticClassifier(nn.Module):
    """Two-layer MLP on image embeddings. ``forward`` returns logits; ``hidden`` returns h."""

    def __init__(self, d_in: int, hidden: int = 256, n_out: int = len(FINDINGS)) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden)
        self.fc2 = nn.Linear(hidden, n_out)

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Draw the weights again as ``nn.Linear`` does (fc1 then fc2, weight then bias), from
        ``generator`` instead of the global random state."""
        for fc in (self.fc1, self.fc2):
            nn.init.kaiming_uniform_(fc.weight, a=math.sqrt(5), generator=generator)
            nn.init.uniform_(fc.bias, -(fc.in_features**-0.5), fc.in_features**-0.5, generator=generator)

    def hidden(self, e: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc1(e))

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.fc2(h)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(e))


def check_inputs(
    x: np.ndarray | torch.Tensor,
    y: np.ndarray,
    mask: np.ndarray,
    split: str,
    d_in: int | None = None,
    findings: tuple[str, ...] = FINDINGS,
) -> None:
    """Refuse NaN/inf rows, wrong widths, empty splits and single-class findings, before training."""
    x = np.asarray(x)
    if x.ndim != 2 or len(x) == 0:
        raise DataError(f"{split}: expected a non-empty (N, d) embedding matrix, got shape {x.shape}")
    if d_in is not None and x.shape[1] != d_in:
        raise DataError(f"{split}: embeddings have width {x.shape[1]}, expected {d_in}")
    bad = np.where(~np.isfinite(x).all(axis=1))[0]
    if len(bad):
        raise DataError(
            f"{split}: non-finite embeddings in rows {bad[:10].tolist()}"
            f"{' ...' if len(bad) > 10 else ''} ({len(bad)} rows)"
        )
    if y.shape != (len(x), len(findings)) or mask.shape != y.shape:
        raise DataError(
            f"{split}: labels {y.shape} / mask {mask.shape} do not match {len(x)} rows x "
            f"{len(findings)} findings"
        )
    for j, f in enumerate(findings):
        vals = y[mask[:, j], j]
        if len(np.unique(vals)) < 2:
            raise DataError(
                f"{split}: finding {f!r} has only one class ({np.unique(vals).tolist()}) among "
                f"{int(mask[:, j].sum())} labelled rows of {len(x)}; AUROC and training are undefined. "
                "Blank labels count as negative, so a finding without a label column is all 0: check "
                "that the data labels it (folder data: a CSV column named for it, or labels=COL:OBS). "
                "Every split needs images with and without it: add labelled rows, give the data a split "
                "column (folder data: ?split=COL), or a larger validation and test share (folder data: "
                "?fractions=0.6,0.2,0.2)."
            )


def macro_auroc(logits: np.ndarray, y: np.ndarray, mask: np.ndarray) -> tuple[float, list[float]]:
    """Macro and per-finding AUROC over the labelled entries of each column.

    A column with a single class among its labelled rows has no AUROC: it is NaN in the list and
    left out of the macro mean (callers report it; it is never silently averaged in).
    """
    from sklearn.metrics import roc_auc_score

    per = []
    for j in range(y.shape[1]):
        yj = y[mask[:, j], j]
        per.append(
            float(roc_auc_score(yj, logits[mask[:, j], j])) if len(np.unique(yj)) == 2 else float("nan")
        )
    return (float(np.nanmean(per)) if not np.all(np.isnan(per)) else float("nan")), per


def train_classifier(
    x_tr: np.ndarray,
    y_tr: np.ndarray,
    m_tr: np.ndarray,
    x_va: np.ndarray,
    y_va: np.ndarray,
    m_va: np.ndarray,
    cfg: ClassifierConfig | None = None,
    progress: bool = True,
) -> tuple[DiagnosticClassifier, dict[str, Any]]:
    """Train on (embeddings, targets, mask); keep the epoch with the best validation macro AUROC."""
    cfg = cfg or ClassifierConfig()
    check_inputs(x_tr, y_tr, m_tr, "train")
    check_inputs(x_va, y_va, m_va, "validate", d_in=x_tr.shape[1])
    g = torch.Generator().manual_seed(cfg.seed)
    model = DiagnosticClassifier(x_tr.shape[1], cfg.hidden, y_tr.shape[1])
    model.reset_parameters(torch.Generator().manual_seed(cfg.seed))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    xt, yt, mt = (torch.as_tensor(np.asarray(a), dtype=torch.float32) for a in (x_tr, y_tr, m_tr))
    xv = torch.as_tensor(np.asarray(x_va), dtype=torch.float32)
    pos_weight = None
    if cfg.class_balance:
        pos = (yt * mt).sum(0)
        pos_weight = ((mt.sum(0) - pos) / pos.clamp(min=1)).clamp(max=50)
    best, best_state, best_epoch, history = -1.0, None, -1, []
    bar = tqdm(range(cfg.max_epochs), desc="classifier", unit="epoch", disable=not progress)
    for epoch in bar:
        model.train()
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            loss = F.binary_cross_entropy_with_logits(
                model(xt[idx]), yt[idx], weight=mt[idx], pos_weight=pos_weight, reduction="sum"
            )
            loss = loss / mt[idx].sum().clamp(min=1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            auc, _ = macro_auroc(model(xv).numpy(), y_va, m_va)
        history.append(auc)
        bar.set_postfix(val_macro_auroc=f"{auc:.4f}")
        if auc > best:
            best, best_epoch = auc, epoch
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        elif epoch - best_epoch >= cfg.patience:
            break
    bar.close()
    model.load_state_dict(best_state)
    model.eval()
    return model, {
        "best_val_macro_auroc": best,
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "config": asdict(cfg),
    }
