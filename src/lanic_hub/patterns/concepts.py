"""Concept directions in the embedding, fitted on report concepts, and the exact split of every
active latent's contribution over them.

An active latent is linear in the embedding (TopK or JumpReLU keeps its pre-activation as it is):
``z_t,i = W_enc[:, (t,i)] · e + c_t,i``. A finding's item contributions (bank patterns and the
latents outside the bank) are therefore ``g · e + κ`` for this image's active set, with
``g = Σ_active (U_t,i,c / T) W_enc[:, (t,i)]`` and ``κ`` the same sum over the folded biases.

The embeddings of training images are regressed jointly on their report concepts
(:class:`~lanic_hub.data.concepts.ConceptTable`): ``e ≈ μ + Σ_c y_c β_c``, so each direction β_c
holds the other concepts fixed and μ is a film whose report names nothing. Any image then splits
exactly as ``e = μ + Σ_c ŷ_c β_c + r``, with ``ŷ`` read from the image (least squares on the
directions, ridge-regularised) and the residual ``r`` whatever is left. Hence, exactly::

    items_c = Σ_concepts ŷ_k (g · β_k)  +  (g · μ + κ)  +  g · r
               named concepts              reference        residual (unnamed)

That is the "linear" attribution: the reference then changes with the image's active set.
The default, "shapley", splits ``items(e) - items(μ)`` by sampled Shapley values of the concept
parts ``ŷ_k β_k`` and the residual, so the reference ``items(μ)`` is one number per finding.

A concept carries its name only when its read-out ``ŷ_k`` detects its own report label on rows
that did not fit the directions (AUROC >= ``min_auroc`` with at least ``min_positives`` positives);
otherwise its part is reported unnamed. The math is pure tensor code;
:func:`fit_concept_directions` reads the fitting rows from an embeddings folder and its dataset.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..data.concepts import ConceptExtractor, ConceptTable, concept_names
from ..decomposition import latent_contributions
from ..errors import ConfigError, DataError
from ..transcoders.ensemble import flat_latents
from .store import RowStore

CONCEPTS_WEIGHTS = "concepts.safetensors"
CONCEPTS_JSON = "concepts.json"
SCHEMA = 1


@dataclass
class ConceptDirections:
    """Concept directions of an embedding space, with their read-out and their measured support."""

    keys: tuple[str, ...]
    mean: torch.Tensor
    """(d,) μ: the fitted embedding of a film whose report names no concept."""
    directions: torch.Tensor
    """(K, d) β_k: each concept's direction, the others held fixed."""
    readout: torch.Tensor
    """(d, K) ŷ = (e - μ) @ readout, the ridge least-squares coordinates on the directions."""
    support: list[dict[str, Any]] = field(default_factory=list)
    """Per concept: ``{"key", "name", "auroc", "positives", "named"}`` measured on held-out rows."""
    meta: dict[str, Any] = field(default_factory=dict)
    attribution: str = "shapley"
    """How an explanation splits over the concepts: "shapley" (sampled Shapley values from the
    reference point μ; the default: on the phantom pairs it puts more of a factor's effect on
    its concept, see docs/counterfactual_phantom.md) or "linear" (the image's active latents as
    one linear map, whose reference term then changes with the active set)."""
    permutations: int = 8
    """Sampled permutations of the Shapley split (antithetic pairs)."""

    @property
    def names(self) -> list[str]:
        return concept_names(self.keys)

    @property
    def named(self) -> torch.Tensor:
        """(K,) bool: the concepts whose name the held-out rows support."""
        return torch.tensor([bool(s.get("named")) for s in self.support] or [False] * len(self.keys))

    def presence(self, e: torch.Tensor) -> torch.Tensor:
        """(B, K) ŷ: how much of each concept's direction the image carries (1: as a typical
        report-positive film; 0: as a film whose report names nothing)."""
        return (e.float() - self.mean) @ self.readout

    def split(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(ŷ (B, K), r (B, d)) with ``e = μ + ŷ @ directions + r`` exactly (to float rounding)."""
        y = self.presence(e)
        return y, e.float() - self.mean - y @ self.directions

    @classmethod
    def fit(
        cls,
        e_fit: torch.Tensor,
        table_fit: ConceptTable,
        e_check: torch.Tensor,
        table_check: ConceptTable,
        *,
        ridge: float = 1e-3,
        readout: str = "ols",
        min_auroc: float = 0.8,
        min_positives: int = 5,
        min_fit_positives: int = 5,
        fitted_on: str = "",
        checked_on: str = "",
    ) -> ConceptDirections:
        """Regress ``e_fit`` on its concept table (1 present, 0.5 uncertain, 0 otherwise; rows
        without a usable report left out) and measure each concept's support on the check rows.
        ``readout``: how ŷ is read from an image: "ols" (least squares on the directions) or
        "gls" (weighted by the inverse covariance of what the concepts leave unexplained; on the
        phantom pairs it moved more of a factor's effect into the residual, so it is not the
        default: docs/counterfactual_phantom.md).
        Concepts with fewer than ``min_fit_positives`` positive fitting rows are dropped."""
        from sklearn.metrics import roc_auc_score

        ok = table_fit.usable
        Y = np.clip(np.nan_to_num(table_fit.values[ok], nan=0.0), -1, 1)
        Y = np.where(Y < 0, 0.5, Y)  # uncertain: half way
        keep = [j for j in range(Y.shape[1]) if (Y[:, j] == 1).sum() >= min_fit_positives]
        if not keep:
            raise DataError(
                f"{fitted_on or 'the fitting rows'}: no concept has {min_fit_positives} positive reports "
                f"among {int(ok.sum())} usable ones; concept directions need reports that name things"
            )
        keys = tuple(table_fit.concepts[j] for j in keep)
        E = e_fit[torch.from_numpy(ok)].double()
        X = torch.cat([torch.ones(len(E), 1, dtype=torch.float64), torch.from_numpy(Y[:, keep])], 1)
        reg = ridge * len(E) * torch.eye(X.shape[1], dtype=torch.float64)
        reg[0, 0] = 0.0  # the intercept is not shrunk
        coef = torch.linalg.solve(X.T @ X + reg, X.T @ E)  # (1 + K, d)
        mean, B = coef[0], coef[1:]
        if readout == "gls":
            R = E - X @ coef
            cov = R.T @ R / len(R)
            cov += 1e-3 * cov.diagonal().mean() * torch.eye(len(cov), dtype=cov.dtype)
            W = torch.linalg.solve(cov, B.T)  # (d, K) Σ^-1 Bᵀ
        elif readout == "ols":
            W = B.T
        else:
            raise ValueError(f"readout must be 'gls' or 'ols', not {readout!r}")
        gram = B @ W
        readout_m = torch.linalg.solve(
            gram.T + ridge * gram.diagonal().mean() * torch.eye(len(B), dtype=B.dtype), W.T
        ).T
        out = cls(keys, mean.float(), B.float(), readout_m.float().contiguous())
        y_check = out.presence(e_check).numpy()
        lab = table_check.positive()
        use = table_check.usable
        support = []
        for j, k in enumerate(keys):
            col = lab[use, table_check.concepts.index(k)] if k in table_check.concepts else np.zeros(0)
            pos = int(col.sum())
            auroc = float(roc_auc_score(col, y_check[use, j])) if 0 < pos < len(col) else None
            named = auroc is not None and pos >= min_positives and auroc >= min_auroc
            support.append({"key": k, "name": out.names[j], "auroc": auroc, "positives": pos, "named": named})
        out.support = support
        out.meta = {
            "schema": SCHEMA,
            "fitted_on": fitted_on,
            "fit_rows": int(ok.sum()),
            "checked_on": checked_on,
            "check_rows": int(use.sum()),
            "ridge": ridge,
            "readout": readout,
            "min_auroc": min_auroc,
            "min_positives": min_positives,
            "rule": "a concept is named when its read-out detects its own report label on the check rows "
            f"at AUROC >= {min_auroc} with >= {min_positives} positives",
        }
        return out

    def with_direction(
        self,
        key: str,
        direction: torch.Tensor,
        e_check: torch.Tensor,
        label_check: np.ndarray,
        *,
        fitted_on: str = "",
        min_auroc: float | None = None,
        min_positives: int | None = None,
    ) -> ConceptDirections:
        """These directions and one more, ``direction`` (d,) under ``key`` (a concept fitted on a
        labelled image set rather than on reports). The read-out is solved again over all K + 1
        directions (the same ridge least squares as :meth:`fit`), so an image's presences of the
        other concepts change where they shared the new direction; the reference point μ does not.
        The new concept is named when its read-out detects ``label_check`` on ``e_check`` (rows
        that did not fit it) by this set's own rule."""
        from sklearn.metrics import roc_auc_score

        if key in self.keys:
            raise ConfigError(f"a concept {key!r} is already there: {list(self.keys)}")
        if self.meta.get("readout", "ols") != "ols":
            raise ConfigError(
                f"these directions were fitted with the {self.meta.get('readout')!r} read-out; adding a "
                "direction is defined for the 'ols' read-out only"
            )
        d = self.directions.shape[1]
        direction = direction.reshape(-1).to(self.directions.dtype)
        if direction.shape != (d,) or not torch.isfinite(direction).all() or float(direction.norm()) == 0:
            raise ConfigError(f"the new direction must be a finite, non-zero vector of {d} numbers")
        B = torch.cat([self.directions, direction[None]]).double()
        gram = B @ B.T
        ridge = float(self.meta.get("ridge", 1e-3))
        readout = torch.linalg.solve(
            gram.T + ridge * gram.diagonal().mean() * torch.eye(len(B), dtype=B.dtype), B
        ).T
        support = [dict(s) for s in self.support]
        out = ConceptDirections(
            (*self.keys, key), self.mean, B.float(), readout.float().contiguous(), support, {**self.meta},
            self.attribution, self.permutations,
        )  # fmt: skip
        y = out.presence(e_check)[:, -1].numpy()
        lab = np.asarray(label_check).astype(bool)
        pos = int(lab.sum())
        auroc = float(roc_auc_score(lab, y)) if 0 < pos < len(lab) else None
        min_auroc = float(self.meta.get("min_auroc", 0.8)) if min_auroc is None else min_auroc
        min_positives = int(self.meta.get("min_positives", 5)) if min_positives is None else min_positives
        named = auroc is not None and pos >= min_positives and auroc >= min_auroc
        out.support.append({"key": key, "name": concept_names((key,))[0], "auroc": auroc, "positives": pos,
                            "named": named, "fitted_on": fitted_on})  # fmt: skip
        out.meta["added"] = [*self.meta.get("added", []), {"key": key, "fitted_on": fitted_on}]
        return out

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        save_file(
            {
                "mean": self.mean.contiguous(),
                "directions": self.directions.contiguous(),
                "readout": self.readout,
            },
            str(folder / CONCEPTS_WEIGHTS),
        )
        doc = {
            **self.meta,
            "attribution": self.attribution,
            "permutations": self.permutations,
            "keys": list(self.keys),
            "support": self.support,
        }
        (folder / CONCEPTS_JSON).write_text(json.dumps(doc, indent=1) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> ConceptDirections | None:
        """The directions saved in ``folder``, or None when it has none (a model from before them)."""
        folder = Path(folder)
        w, j = folder / CONCEPTS_WEIGHTS, folder / CONCEPTS_JSON
        if not w.is_file() or not j.is_file():
            return None
        try:
            doc = json.loads(j.read_text())
            t = load_file(str(w))
            keys = tuple(doc["keys"])
            out = cls(keys, t["mean"], t["directions"], t["readout"], doc["support"], doc)
            out.attribution = str(doc.get("attribution", "linear"))
            out.permutations = int(doc.get("permutations", 8))
        except (KeyError, ValueError, OSError) as err:  # a folder edited by hand, or truncated
            raise DataError(
                f"{folder}: unreadable concept directions ({CONCEPTS_JSON} / {CONCEPTS_WEIGHTS}): {err}"
            ) from err
        if out.attribution not in ("shapley", "linear"):
            raise DataError(f"{j}: attribution must be 'shapley' or 'linear', not {out.attribution!r}")
        K, d = out.directions.shape
        if out.mean.shape != (d,) or out.readout.shape != (d, K) or len(keys) != K or len(out.support) != K:
            raise DataError(
                f"{folder / CONCEPTS_WEIGHTS}: shapes do not agree (mean {tuple(out.mean.shape)}, directions "
                f"{tuple(out.directions.shape)}, readout {tuple(out.readout.shape)}, {len(keys)} keys)"
            )
        return out


@torch.no_grad()
def active_linear_maps(
    values: torch.Tensor,
    indices: torch.Tensor,
    U: torch.Tensor,
    W_enc: torch.Tensor,
    encoder_bias: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(g (B, C, d), κ (B, C)) with ``g[b, c] · e_b + κ[b, c]`` = the sum of the contributions of
    the active latents of image b to finding c. ``values``/``indices``: the codes (B, T, k);
    ``U``: (T, L, C) latent logit weights; ``W_enc``: (d, T*L); ``encoder_bias``: (T, L).

    One sparse (B*C, T*L) x (T*L, d) product: no (B, T*k, d) gather."""
    B, T, k = indices.shape
    L, C = U.shape[1], U.shape[2]
    coef = latent_contributions((values > 0).to(U.dtype), indices, U)  # (B, T, k, C): U / T where active
    flat = flat_latents(indices, L).reshape(B, T * k)
    kappa = (coef * encoder_bias.reshape(-1)[flat].view(B, T, k, 1)).sum((1, 2))  # (B, C)
    rows = (torch.arange(B).view(B, 1, 1) * C + torch.arange(C).view(1, 1, C)).expand(B, T * k, C)
    cols = flat.unsqueeze(-1).expand(B, T * k, C)
    S = torch.sparse_coo_tensor(
        torch.stack([rows.reshape(-1), cols.reshape(-1)]),
        coef.reshape(B, T * k, C).reshape(-1).to(W_enc.dtype),
        (B * C, T * L),
        check_invariants=False,  # built from in-range indices above; the check would cost a pass
    ).coalesce()
    g = torch.sparse.mm(S, W_enc.T).view(B, C, -1)
    return g, kappa


def fit_concept_directions(
    embeddings: str | Path,
    ds,
    *,
    data_spec: str = "",
    max_rows: int = 50_000,
    seed: int = 0,
    log=print,
    **fit_kwargs: Any,
) -> ConceptDirections | None:
    """Concept directions of an embedded dataset: fitted on its train rows' reports, their names
    checked on its validate rows (without a split column: a seeded 80/20 split of the rows). At
    most ``max_rows`` fitting rows (a seeded sample). None, with a message, when the dataset has
    no reports."""
    if "report" not in ds.column_names:
        log("concepts: the dataset has no report column; explanations will name patterns only")
        return None
    store = RowStore(embeddings)
    rows = store.row_ids.numpy()
    g = np.random.default_rng(seed)
    if "split" in ds.column_names:
        split = np.array(ds.select_columns(["split"]).select(rows.tolist())["split"])
        fit_pos, chk_pos = np.where(split == "train")[0], np.where(split == "validate")[0]
    else:
        fit_pos, chk_pos = np.array([], dtype=int), np.array([], dtype=int)
    if len(fit_pos) == 0 or len(chk_pos) == 0:
        perm = g.permutation(len(rows))
        cut = int(0.8 * len(rows))
        fit_pos, chk_pos = np.sort(perm[:cut]), np.sort(perm[cut:])
    if len(fit_pos) > max_rows:
        fit_pos = np.sort(g.choice(fit_pos, max_rows, replace=False))
    if len(chk_pos) > max_rows:
        chk_pos = np.sort(g.choice(chk_pos, max_rows, replace=False))
    reports = ds.select_columns(["report"])
    x = ConceptExtractor()

    def part(pos: np.ndarray) -> tuple[torch.Tensor, ConceptTable]:
        texts = reports.select(rows[pos].tolist())["report"]
        return store.gather(torch.from_numpy(pos)), x.table(texts, log=log)

    e_fit, t_fit = part(fit_pos)
    e_chk, t_chk = part(chk_pos)
    name = data_spec or "dataset"
    min_fit = fit_kwargs.get("min_fit_positives", 5)
    if not ((np.nan_to_num(t_fit.values[t_fit.usable]) == 1).sum(0) >= min_fit).any():
        log(
            f"concepts: no report concept is stated in {min_fit} of the {int(t_fit.usable.sum())} usable "
            f"reports of {name}'s fitting rows; explanations will name patterns only"
        )
        return None
    return ConceptDirections.fit(
        e_fit,
        t_fit,
        e_chk,
        t_chk,
        fitted_on=f"{name}: {len(fit_pos)} train rows' reports",
        checked_on=f"{name}: {len(chk_pos)} validate rows' reports",
        **fit_kwargs,
    )


@torch.no_grad()
def shapley_over_concepts(
    items_of,
    concepts: ConceptDirections,
    e: torch.Tensor,
    n_permutations: int = 8,
    seed: int = 0,
    items_e: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split ``items_of(e) - items_of(μ)`` exactly over the concepts and the residual by sampled
    Shapley values: the players are each concept's part ``ŷ_k β_k`` of the image and the residual
    ``r`` (``e = μ + Σ ŷ_k β_k + r``); a coalition S is the point ``μ + Σ_{p in S} part_p``.

    ``items_of``: (n, d) -> (n, C), the sum of the active latents' contributions at those points.
    Each sampled permutation adds the players one by one, so its marginal gains telescope to
    ``items_of(e) - items_of(μ)`` exactly; so does their mean. The permutations are fixed by
    ``seed`` and come in antithetic pairs (an order and its reverse), so an explanation is
    deterministic. ``items_e``: ``items_of(e)`` where the caller has it already (the full
    coalition is the image itself, so its value need not be computed again). Returns (φ concepts
    (B, K, C), φ residual (B, C), reference (C,) = ``items_of(μ)``, ŷ (B, K))."""
    y, r = concepts.split(e)
    B, K = y.shape
    parts = torch.cat([y.unsqueeze(-1) * concepts.directions.unsqueeze(0), r.unsqueeze(1)], 1)  # (B, P, d)
    P = K + 1
    g = torch.Generator().manual_seed(seed)
    perms = []
    for _ in range(max(1, n_permutations // 2)):
        p = torch.randperm(P, generator=g)
        perms += [p, p.flip(0)]
    reference = items_of(concepts.mean.unsqueeze(0))[0]  # (C,)
    if items_e is None:
        items_e = items_of(e.float())
    phi = torch.zeros(B, P, reference.shape[0], dtype=reference.dtype)
    for p in perms:
        pts = concepts.mean + parts[:, p[:-1]].cumsum(1)  # (B, P-1, d): after each player joins
        inner = items_of(pts.reshape(B * (P - 1), -1)).view(B, P - 1, -1)
        vals = torch.cat([inner, items_e.unsqueeze(1).to(inner.dtype)], 1)  # the last point is e itself
        prev = torch.cat([reference.expand(B, 1, -1), vals[:, :-1]], 1)
        phi[:, p] += vals - prev
    phi /= len(perms)
    return phi[:, :K], phi[:, K], reference, y


def write_concept_directions(
    folder: str | Path, embeddings: str | Path, ds, *, data_spec: str = "", log=print
) -> ConceptDirections | None:
    """Fit the concept directions of an embedded dataset (:func:`fit_concept_directions`) and save
    them in ``folder`` beside the bank, replacing any earlier ones (none are left when the reports
    support no concept). The patterns stage and ``lanic-hub patterns`` both call this."""
    folder = Path(folder)
    directions = fit_concept_directions(embeddings, ds, data_spec=data_spec, log=log)
    for name in (CONCEPTS_JSON, CONCEPTS_WEIGHTS):
        (folder / name).unlink(missing_ok=True)
    if directions is not None:
        directions.save(folder)
        named = [s["name"] for s in directions.support if s["named"]]
        log(f"concepts: {len(named)} of {len(directions.keys)} named ({', '.join(named)})")
    return directions
