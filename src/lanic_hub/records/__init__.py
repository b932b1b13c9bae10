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
- :class:`TrainingReport`, ``fidelity.json`` of a training folder: written by ``lanic-hub train``;
  read by the health checks, the export, the card, the pipeline's summary and the variants table.
- :class:`RunSummary`, ``summary.json`` of a pipeline run: written by ``lanic-hub quickstart`` /
  ``build``; read by the quickstart benchmark and by users.
- :class:`EvalResults`, ``results/<suite>/<model>.json`` of ``lanic-eval``: written by the
  evaluation runner and the counterfactual suite; read by the leaderboards, the model card and
  the Hub's eval results (``lanic-hub eval-results``).

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

from .bank import BankMeta
from .base import Part, Record
from .embeddings import BackboneIdentity, DatasetIdentity, EmbeddingCacheError, EmbeddingsManifest
from .phantom_clip import PhantomClipReport, ProbeCheck
from .results import AurocBlock, DatasetRef, EvalResults, Metrics, ModelRef, PathAccuracy
from .run import RunFolder, RunSummary
from .training import Aurocs, EnsembleReport, FidelitySummary, LabelCount, PathAuroc, TrainingReport

__all__ = [
    "AurocBlock",
    "Aurocs",
    "BackboneIdentity",
    "BankMeta",
    "DatasetRef",
    "DatasetIdentity",
    "EmbeddingCacheError",
    "EmbeddingsManifest",
    "EnsembleReport",
    "EvalResults",
    "FidelitySummary",
    "LabelCount",
    "Metrics",
    "ModelRef",
    "Part",
    "PathAccuracy",
    "PathAuroc",
    "PhantomClipReport",
    "ProbeCheck",
    "Record",
    "RunFolder",
    "RunSummary",
    "TrainingReport",
]
