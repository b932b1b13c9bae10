"""``summary.json`` of a pipeline run, and the run folder's layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from .base import Record


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

    def eval_results(self, suite: str, model: str | None = None) -> Path:
        """The folder of a suite's results files; with ``model``, that model's results file."""
        from .results import EvalResults

        return self.eval / "results" / suite if model is None else EvalResults.path(self.eval, suite, model)

    def leaderboard(self, suite: str) -> Path:
        """A suite's markdown leaderboard."""
        return self.eval / "leaderboard" / f"{suite}.md"

    @property
    def stages_json(self) -> Path:
        return self.out / "stages.json"

    @property
    def summary(self) -> Path:
        return self.out / RunSummary.FILE
