"""Typed records of the JSON files one stage writes and another reads, and the run folder's layout.

Every such file has one class here: its fields (with a docstring each), its file name (``FILE``),
its schema version (``SCHEMA``) and its own consistency check (:meth:`Record.problems`). Read a
file with :meth:`Record.read` and write it with :meth:`Record.write`; read code uses attributes
(``manifest.backbone.spec``), so a renamed field fails where it is renamed, not in another module
at run time.

- :class:`EmbeddingsManifest`, ``manifest.json`` of an embeddings folder: written by
  ``lanic-hub embed``; read by training, the pattern bank, the evaluation, the card and the demo.
- :class:`PhantomClipReport`, ``training_report.json`` of a phantom CLIP folder: written by its
  training; read by its cache check (:func:`lanic_hub.backbone.phantom_clip.cache_problem`).
- :class:`RunSummary`, ``summary.json`` of a pipeline run: written by ``lanic-hub quickstart`` /
  ``build``; read by the quickstart benchmark and by users.

A pattern of ``patterns.json`` is :class:`lanic_hub.patterns.record.Pattern`.

Reading is strict where it matters and lenient where old files differ:

- a file that is not JSON, a missing key or a value of the wrong type is a :class:`RecordError`
  (or the record's ``ERROR`` subclass) naming the file and the key, e.g.
  ``runs/q/embeddings/manifest.json: key 'dataset.rows': Input should be a valid integer``;
- keys this version does not know are kept and written back, so a file read and written again
  keeps them (and a newer writer's file still loads);
- a newer schema version than this code knows is refused, with the versions named;
- files written before a key existed load with its default (``data_spec`` of early manifests).

:class:`RunFolder` names every path of a pipeline run's folder, so the layout is written once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import LanicError, RecordError
from .utils.io import write_text_atomic

R = TypeVar("R", bound="Record")


class _Part(BaseModel):
    """A nested part of a record: typed fields, unknown keys kept."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)


class Record(_Part):
    """Base of every file record: read, validate, check, write."""

    FILE: ClassVar[str]
    """The file's name inside its folder."""
    SCHEMA: ClassVar[int] = 1
    """The newest schema version this code reads and writes."""
    VERSION_KEY: ClassVar[str | None] = None
    """The key that holds the file's schema version (None: the file has none; it is version 1)."""
    ERROR: ClassVar[type[LanicError]] = RecordError
    """The error raised for a file that cannot be read as this record."""

    @classmethod
    def path_in(cls, folder_or_file: str | Path) -> Path:
        """The record's file: ``folder_or_file`` itself when it names a file, else ``folder / FILE``."""
        p = Path(folder_or_file)
        return p if p.suffix == ".json" else p / cls.FILE

    @classmethod
    def from_dict(cls: type[R], d: Any, where: str | Path = "record") -> R:
        """Validate a decoded document; the error names ``where`` and the key."""
        if not isinstance(d, dict):
            raise cls.ERROR(f"{where}: expected a JSON object, found {type(d).__name__}")
        if cls.VERSION_KEY is not None:
            v = d.get(cls.VERSION_KEY)
            if type(v) is not int:
                raise cls.ERROR(
                    f"{where}: key {cls.VERSION_KEY!r}: the schema version must be an integer, found {v!r}"
                )
            if v > cls.SCHEMA:
                raise cls.ERROR(
                    f"{where}: schema version {v} is newer than this lanic-hub reads ({cls.SCHEMA}); "
                    "upgrade lanic-hub"
                )
        try:
            return cls.model_validate(d)
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
            raise cls.ERROR(f"{where}: key {key!r}: {err['msg']}{more}") from exc

    @classmethod
    def read(cls: type[R], folder_or_file: str | Path, *, check: bool = True) -> R:
        """The record in ``folder_or_file`` (a folder holding ``FILE``, or the file itself).
        ``check``: also refuse a record whose own figures disagree (:meth:`problems`)."""
        path = cls.path_in(folder_or_file)
        if not path.is_file():
            raise cls.ERROR(f"{path}: missing")
        try:
            doc = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise cls.ERROR(f"{path}: not valid JSON ({exc})") from exc
        rec = cls.from_dict(doc, path)
        if check and (bad := rec.problems()):
            raise cls.ERROR(f"{path}: " + "; ".join(bad))
        return rec

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types: the fields in their order, then the keys this version does not know."""
        return self.model_dump(mode="json")

    def write(self, folder_or_file: str | Path) -> Path:
        """Write atomically (a reader never sees half a file); returns the path."""
        path = self.path_in(folder_or_file)
        write_text_atomic(path, json.dumps(self.to_dict(), indent=1))
        return path

    def problems(self) -> list[str]:
        """What in the record contradicts itself (empty: consistent). Subclasses add their rules."""
        return []


# --------------------------------------------------------------------------- embeddings manifest


class EmbeddingCacheError(LanicError):
    """An embeddings folder is incomplete, or belongs to another backbone or dataset."""


class BackboneIdentity(_Part):
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


class DatasetIdentity(_Part):
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


# --------------------------------------------------------------------------- phantom CLIP report


class ProbeCheck(_Part):
    """The phantom CLIP's calibration probe (:func:`lanic_hub.backbone.phantom_clip.quality_check`)."""

    measured_on: str
    """The phantoms it was measured on."""
    macro_probe_auroc: float
    """Macro AUROC of linear probes on the image embeddings against the report labels."""
    probe_auroc: dict[str, float | None] = {}
    """Per finding."""
    device_probe_auroc: dict[str, float | None] = {}
    """Per device."""
    min_probe_auroc: float
    """The documented band's lower end (0: no band)."""
    passed: bool
    """Whether the macro AUROC is inside the band."""
    seconds: float | None = None
    """How long the probe took."""


class PhantomClipReport(Record):
    """``training_report.json`` of a phantom CLIP folder: how it was trained and checked."""

    FILE: ClassVar[str] = "training_report.json"

    config: dict[str, Any]
    """The :class:`PhantomClipConfig` it was trained with."""
    steps: int
    """Optimiser steps taken."""
    planned_steps: int
    """Steps its config budgets."""
    complete: bool
    """Whether it took every planned step."""
    stopped_at_time_limit: bool = False
    """Whether a time limit cut it short."""
    time_limit_s: float | None = None
    """That time limit."""
    final_loss: float | None = None
    """Mean contrastive loss of the last 20 steps."""
    seconds: dict[str, float] = {}
    """Wall time per phase (data, text_features, train, total)."""
    unique_sentences: int | None = None
    """Distinct report sentences it was trained on."""
    check: ProbeCheck | None = None
    """The calibration probe (None: not run)."""

    def budget(self) -> int | None:
        """Steps the config asks for (n_images // batch_size x epochs), None when it cannot say."""
        c = self.config
        try:
            return (int(c["n_images"]) // int(c["batch_size"])) * int(c["epochs"])
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return None

    def problems(self) -> list[str]:
        if not self.complete:
            return []  # an honest partial run: consistent, not servable (see ``servable``)
        budget = self.budget()
        if budget is None:
            return ["key 'config': records no n_images, batch_size and epochs to check its steps against"]
        if not self.steps == self.planned_steps == budget:
            return [
                f"key 'complete': its report says complete, but ran {self.steps} steps of its planned "
                f"{self.planned_steps}, and its config's budget is {budget}"
            ]
        return []

    def unservable(self) -> str | None:
        """Why this model must not be served from the cache (None: it may)."""
        if not self.complete:
            return f"its training stopped after {self.steps} of {self.planned_steps} steps"
        if bad := self.problems():
            return bad[0]
        if self.check is None:
            return "it has not passed the calibration probe"
        if not self.check.passed:
            return (
                f"its calibration probe gave macro AUROC {self.check.macro_probe_auroc:.3f} < "
                f"{self.check.min_probe_auroc}"
            )
        return None


# --------------------------------------------------------------------------- run summary


class RunSummary(Record):
    """``summary.json`` of a pipeline run (``lanic-hub quickstart`` / ``build``)."""

    FILE: ClassVar[str] = "summary.json"

    seconds: dict[str, float]
    """Wall seconds per stage (the stage names of ``STAGE_NAMES``, then ``eval``)."""
    peak_rss_gb: dict[str, float] = {}
    """Peak resident memory per stage, GB."""
    leaderboard: str | None = None
    """The evaluation's leaderboard file (None: no results)."""
    data: str
    """The dataset spec the model was built from."""
    backbone: str
    """The backbone spec."""
    model: str
    """The saved model folder."""
    auroc_test: dict[str, float]
    """``classifier_macro`` and ``ensemble_path_macro`` on the test split."""
    measured_on: str
    """What the AUROCs were measured on."""
    fvu_full_level: float
    """The ensemble's test FVU at its full dictionary size."""
    pattern_bank: dict[str, Any]
    """The bank's counts (latents, alive, merged, selected, ...)."""
    health: dict[str, Any]
    """``{"failed": [...], "checks": [...]}``: the model's health checks."""

    def problems(self) -> list[str]:
        missing = {"classifier_macro", "ensemble_path_macro"} - set(self.auroc_test)
        return [f"key 'auroc_test': lacks {sorted(missing)}"] if missing else []


# --------------------------------------------------------------------------- run folder layout


class RunFolder:
    """Every path of a pipeline run's folder (``lanic-hub quickstart --out`` / ``build``).

    ::

        phantoms/              (phantom data only) the generated dataset, HF + MIMIC-CXR-JPG layouts
        phantom_preview.png    (phantom data only) 16 generated studies
        label_summary.md       (phantom data only) label counts
        embeddings/            image / report / sentence embeddings (manifest.json + shards)
        train/                 classifier, ensemble, fidelity.json, patterns.*
        model/                 the LanIC model: config.json, model.safetensors, patterns.json, README.md
        eval/results/<suite>/  lanic-eval results, one JSON per model and baseline
        eval/leaderboard/      one markdown table per suite
        stages.json            the ledger: what each stage was made from
        summary.json           seconds per stage and the headline figures (:class:`RunSummary`)
    """

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.out)!r})"

    @property
    def phantoms(self) -> Path:
        return self.out / "phantoms"

    @property
    def phantoms_hf(self) -> Path:
        return self.phantoms / "hf"

    @property
    def phantom_preview(self) -> Path:
        return self.out / "phantom_preview.png"

    @property
    def label_summary(self) -> Path:
        return self.out / "label_summary.md"

    @property
    def embeddings(self) -> Path:
        return self.out / "embeddings"

    @property
    def train(self) -> Path:
        return self.out / "train"

    @property
    def model(self) -> Path:
        return self.out / "model"

    @property
    def eval(self) -> Path:
        return self.out / "eval"

    def eval_results(self, suite: str) -> Path:
        """The folder of a suite's results files."""
        return self.eval / "results" / suite

    def leaderboard(self, suite: str) -> Path:
        """A suite's markdown leaderboard."""
        return self.eval / "leaderboard" / f"{suite}.md"

    @property
    def stages_json(self) -> Path:
        return self.out / "stages.json"

    @property
    def summary(self) -> Path:
        return self.out / RunSummary.FILE
