"""The image embeddings of an embeddings folder as one row store (what the bank build and the
concept directions read)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..backbone.embed import iter_shards, read_manifest


class RowStore:
    """Image embeddings of an embeddings folder, memory-mapped, gathered by position."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        shards = [s for _, s in iter_shards(folder)]
        self.manifest = read_manifest(self.folder)
        self.row_ids = (
            torch.cat([s["row_ids"] for s in shards]) if shards else torch.zeros(0, dtype=torch.long)
        )
        self._img = [s["image"] for s in shards]
        self._start = np.cumsum([0] + [len(x) for x in self._img])

    def __len__(self) -> int:
        return int(self._start[-1])

    @property
    def dim(self) -> int:
        return self._img[0].shape[1]

    def gather(self, pos: torch.Tensor) -> torch.Tensor:
        pos = pos.reshape(-1).numpy()
        shard = np.searchsorted(self._start, pos, side="right") - 1
        out = torch.empty(len(pos), self.dim)
        for s in np.unique(shard):
            m = shard == s
            out[torch.from_numpy(m)] = self._img[s][torch.from_numpy(pos[m] - self._start[s])].float()
        return out

    def batches(self, batch_size: int):
        """(first position, (B, d) float32 embeddings) in order."""
        for s, x in enumerate(self._img):
            for a in range(0, len(x), batch_size):
                yield int(self._start[s]) + a, x[a : a + batch_size].float()
