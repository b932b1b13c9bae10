"""``manifest.json`` of an embeddings folder."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from ..errors import LanicError
from .base import Part, Record


class EmbeddingCacheError(LanicError):
    """An embeddings folder is incomplete, or belongs to another backbone or dataset."""


class BackboneIdentity(Part):
    """What a cache records about the backbone that made it (:meth:`Backbone.identity`)."""

    spec: str
    """The backbone spec it was loaded from (``phantom``, ``hf-hub:...``, ``local-dir:...``)."""
    revision: str | None = None
    """The Hub revision, when it came from the Hub."""
    embed_dim: int
    """Width of the image (and text) embedding."""
    image_size: int
    """The square input size of the image tower."""
    context_length: int | None = None
    """The text tower's token context."""


class DatasetIdentity(Part):
    """Which dataset the rows come from."""

    fingerprint: str
    """:func:`lanic_hub.data.schema.dataset_fingerprint` of the dataset."""
    rows: int
    """Its row count."""


class EmbeddingsManifest(Record):
    """``manifest.json`` of an embeddings folder: what the embeddings were made from."""

    FILE: ClassVar[str] = "manifest.json"
    VERSION_KEY: ClassVar[str | None] = "version"
    ERROR: ClassVar[type[LanicError]] = EmbeddingCacheError
    #: the keys that say which embeddings these are: a resumed run must agree on all of them
    IDENTITY: ClassVar[tuple[str, ...]] = (
        "version",
        "backbone",
        "preprocess",
        "dataset",
        "dtype",
        "text",
        "shard_size",
    )

    version: int = 1
    """Schema version of this file."""
    lanic_hub: str
    """The lanic-hub version that wrote it."""
    backbone: BackboneIdentity
    """The backbone that embedded the rows."""
    preprocess: dict[str, Any]
    """The image tower's preprocessing (open_clip's ``preprocess_cfg``)."""
    dataset: DatasetIdentity
    """The dataset embedded."""
    dtype: Literal["float32", "float16", "bfloat16"]
    """Storage type of the embeddings."""
    text: bool
    """Whether reports and report sentences were embedded too."""
    shard_size: int
    """Rows per shard; shard ``k`` holds rows ``[k * shard_size, (k + 1) * shard_size)``."""
    shards: int
    """Number of shards when complete."""
    data_spec: str | None = None
    """Where the labels live (``mimic:...``, ``hf:...``); not part of the identity."""

    def problems(self) -> list[str]:
        out = []
        if self.shard_size < 1:
            out.append(f"key 'shard_size': {self.shard_size} is not a positive row count")
        elif self.shards != -(-self.dataset.rows // self.shard_size):
            out.append(
                f"key 'shards': {self.shards} shards cannot hold {self.dataset.rows} rows of "
                f"{self.shard_size} (that takes {-(-self.dataset.rows // self.shard_size)})"
            )
        return out

    def identity_mismatch(self, other: EmbeddingsManifest) -> str | None:
        """The first identity key on which ``other`` differs, as 'key (theirs, ours)', or None."""
        mine, theirs = self.to_dict(), other.to_dict()
        for k in self.IDENTITY:
            if mine.get(k) != theirs.get(k):
                return f"{k} ({mine.get(k)!r}, now {theirs.get(k)!r})"
        return None
