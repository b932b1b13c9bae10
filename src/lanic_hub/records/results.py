"""A ``lanic-eval`` results file: one model (or baseline) evaluated on one suite,
``<out>/results/<suite>/<slug>.json`` (JSON Schema: ``resources/schemas/results-1.schema.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from ..errors import ResultsError
from ..utils.io import slug, write_text_atomic
from .base import Part, Record


class ModelRef(Part):
    """Which model the figures are of."""

    id: str = Field(min_length=1)
    """A model folder, a Hub repo id, or a baseline's name with the model it came from."""
    revision: str | None = None
    """The Hub revision of a model loaded from the Hub cache (None: a folder or a baseline)."""
    kind: str = Field(min_length=1)
    """'lanic', 'baseline', or a counterfactual method's kind ('ceiling', ...)."""


class DatasetRef(Part):
    """What the figures were measured on."""

    spec: str = Field(min_length=1)
    """The dataset spec (or, for generated pairs, how they were drawn)."""
    fingerprint: str | None
    """The dataset's content fingerprint (None for generated pairs)."""
    split: str = Field(min_length=1)
    """The split measured ('test', or 'pairs' for the counterfactual suite)."""
    rows: int = Field(ge=0)
    """How many rows (images) the figures come from."""

    def label(self) -> str:
        """'SPEC (split, N rows)'."""
        return f"{self.spec} ({self.split}, {self.rows} rows)"


class AurocBlock(Part):
    """One path's AUROC: per finding, macro, and the macro's bootstrap 95% CI."""

    per_finding: list[float | None]
    """One AUROC per finding, in the results' ``findings`` order (None / NaN: not measurable)."""
    ci_low: list[float | None] = []
    """The bootstrap 95% interval's lower end, per finding."""
    ci_high: list[float | None] = []
    """Its upper end, per finding."""
    macro: float | None
    """Their mean."""
    macro_ci: list[float | None] = [None, None]
    """The bootstrap 95% interval of ``macro``."""


class PathAccuracy(Part):
    """The accuracy of one prediction path (classifier, ensemble path, a baseline's model)."""

    notes: list[str] = []
    """What could not be measured and why (a finding with one class among the test rows, ...)."""
    auroc: AurocBlock
    """AUROC per finding and macro."""
    auprc: list[float | None] = []
    """AUPRC per finding."""
    f1: list[float | None] = []
    """F1 per finding at the threshold chosen on the validate split."""
    f1_thresholds_from_validate: list[float | None] = []
    """Those thresholds."""
    ece: list[float | None] = []
    """Expected calibration error per finding."""


class Metrics(Part):
    """The figures, by family. A LanIC model on an accuracy suite has the first five; a baseline
    has ``accuracy`` (and its training ``seconds``); the counterfactual suite has ``counterfactual``.
    The families below ``accuracy`` are kept as the suites write them (see their modules)."""

    accuracy: dict[str, PathAccuracy] | None = None
    """{path: its accuracy}: 'classifier', 'ensemble_path', 'top10_patterns_path' of a LanIC model;
    'model' of a baseline."""
    fidelity: dict[str, Any] | None = None
    """Logit R², AUROC drop, FVU by level, L0, dead / dense fractions
    (:func:`lanic_hub.evaluation.metrics.fidelity_metrics`)."""
    monosemanticity: dict[str, Any] | None = None
    """The bank's MS, purity and text coherence, and on the phantom world its ground-truth
    detection and naming."""
    explanations: dict[str, Any] | None = None
    """Patterns for 90% of the evidence, completeness error, deletion / insertion curves."""
    stability: dict[str, Any] | None = None
    """Matched decoder similarity between members."""
    counterfactual: dict[str, Any] | None = None
    """The phantom-counterfactual suite's figures (:mod:`lanic_hub.evaluation.counterfactual`)."""

    def families(self) -> list[str]:
        """The families this results file has (its keys with a value)."""
        return [k for k, v in self.model_dump(exclude_unset=True).items() if v]


class EvalResults(Record):
    """One results file of ``lanic-eval`` (schema 1)."""

    FILE: ClassVar[str] = "results.json"  # the runner names each file after its model: see path()
    VERSION_KEY: ClassVar[str | None] = "schema"
    ERROR: ClassVar[type] = ResultsError

    schema_: int = Field(alias="schema")
    """This file's schema version (1)."""
    model: ModelRef
    """Which model the figures are of."""
    suite: str = Field(min_length=1)
    """The suite that measured it (phantom, mimic-cxr, chexpert, nih, data, real-fixtures,
    phantom-shortcut, phantom-counterfactual)."""
    findings: list[str] = Field(min_length=1)
    """The findings, in the order of every per-finding list."""
    dataset: DatasetRef
    """What the figures were measured on."""
    config: dict[str, Any] | None = None
    """The suite's configuration (the counterfactual suite)."""
    world: dict[str, Any] | None = None
    """The phantom world the pairs were drawn from (the counterfactual suite)."""
    lanic_hub: str
    """The lanic-hub version that measured it."""
    seed: int
    """The evaluation's seed (bootstrap, draws)."""
    seconds: float = Field(ge=0)
    """Wall seconds the evaluation took."""
    metrics: Metrics
    """The figures."""

    @staticmethod
    def path(out: str | Path, suite: str, name: str) -> Path:
        """Where the runner writes the results of model ``name`` on ``suite`` under ``out``."""
        return Path(out) / "results" / suite / f"{slug(name)}.json"

    def to_dict(self) -> dict[str, Any]:
        """Python values (numpy scalars of the metrics as written; the file is written with
        ``default=float``), keys in the order they were read or set."""
        return self.model_dump(mode="python", by_alias=True, exclude_unset=True)

    def write(self, folder_or_file: str | Path) -> Path:
        path = self.path_in(folder_or_file)
        write_text_atomic(path, json.dumps(self.to_dict(), indent=1, default=float))
        return path

    def problems(self) -> list[str]:
        out = []
        if self.schema_ != self.SCHEMA:
            out.append(f"results schema {self.schema_!r} unknown (this lanic-hub reads {self.SCHEMA})")
        if len(set(self.findings)) != len(self.findings):
            out.append(f"key 'findings': repeated finding in {self.findings}")
        if not self.metrics.families():
            out.append("key 'metrics': no figures")
        for name, acc in (self.metrics.accuracy or {}).items():
            if len(acc.auroc.per_finding) != len(self.findings):
                out.append(
                    f"key 'metrics.accuracy.{name}.auroc.per_finding': {len(acc.auroc.per_finding)} "
                    f"values for {len(self.findings)} findings"
                )
        return out
