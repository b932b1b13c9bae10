"""Activations on a fixed set of sample rows, held sparse: what the merge and the purity analysis
read instead of a dense (rows, latents) matrix."""

from __future__ import annotations

from typing import NamedTuple

import torch


class SampleTable(NamedTuple):
    """Activations on the sample rows as sparse entries sorted by column: a block of columns is
    one slice, so no (n_sample, columns) dense matrix is held beside the passes (at paper shape,
    8,192 rows x 100k alive latents: 3.3 GB each for the latents and the candidate patterns)."""

    rows: torch.Tensor
    """(E,) sample index of each entry."""
    cols: torch.Tensor
    """(E,) column of each entry, ascending."""
    vals: torch.Tensor
    """(E,) float32 values."""
    shape: tuple[int, int]
    """(n_sample, columns)."""

    @classmethod
    def from_entries(cls, rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor, shape) -> SampleTable:
        order = torch.argsort(cols, stable=True)
        return cls(rows[order], cols[order], vals[order].float(), (int(shape[0]), int(shape[1])))

    @classmethod
    def from_parts(cls, parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], shape) -> SampleTable:
        """From (rows, cols, vals) pieces gathered batch by batch; an empty list gives an empty table."""
        if not parts:
            none = torch.zeros(0, dtype=torch.long)
            return cls(none, none.clone(), torch.zeros(0), (int(shape[0]), int(shape[1])))
        rows, cols, vals = (torch.cat(x) for x in zip(*parts, strict=True))
        return cls.from_entries(rows, cols, vals, shape)

    def block(self, a: int, b: int) -> torch.Tensor:
        """Dense (n_sample, b - a) float32 of columns a..b-1."""
        lo, hi = torch.searchsorted(self.cols, torch.tensor([a, b])).tolist()
        out = torch.zeros(self.shape[0], b - a)
        out.index_put_((self.rows[lo:hi], self.cols[lo:hi] - a), self.vals[lo:hi], accumulate=True)
        return out

    def dense(self) -> torch.Tensor:
        return self.block(0, self.shape[1])

    def columns(self, idx: torch.Tensor, ptr: torch.Tensor | None = None) -> torch.Tensor:
        """Dense (n_sample, len(idx)) float32 of the columns ``idx``, in that order (``ptr``:
        :meth:`column_pointers`, computed once by a caller that gathers many times)."""
        ptr = self.column_pointers() if ptr is None else ptr
        starts, lens = ptr[idx], ptr[idx + 1] - ptr[idx]
        pos = torch.repeat_interleave(starts - torch.cumsum(lens, 0) + lens, lens)
        pos += torch.arange(len(pos))
        out = torch.zeros(self.shape[0], len(idx))
        local = torch.repeat_interleave(torch.arange(len(idx)), lens)
        out.index_put_((self.rows[pos], local), self.vals[pos], accumulate=True)
        return out

    def column_pointers(self) -> torch.Tensor:
        """(columns + 1,) where each column's entries start: column j is entries ptr[j]..ptr[j+1]-1."""
        return torch.searchsorted(self.cols, torch.arange(self.shape[1] + 1))

    def moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each column's mean and standard deviation over all n_sample rows (the rows without an
        entry count as zeros), two-pass in float64: (columns,) float64 each. Entries must be one
        per (row, column), as the passes write them."""
        n, C = self.shape
        v = self.vals.double()
        mean = torch.zeros(C, dtype=torch.float64).index_add_(0, self.cols, v) / max(n, 1)
        nnz = torch.bincount(self.cols, minlength=C).double()
        ss = torch.zeros(C, dtype=torch.float64).index_add_(0, self.cols, (v - mean[self.cols]).pow(2))
        return mean, ((ss + (n - nnz) * mean.pow(2)) / max(n, 1)).sqrt()
