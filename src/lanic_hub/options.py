"""The options of every stage and of the whole pipeline (``lanic-hub build --config FILE.yaml``:
:class:`PipelineConfig`'s fields are the YAML keys). Plain dataclasses with no torch import, so
the command line builds its arguments from them in a fraction of a second; the stage functions
that use them are in :mod:`lanic_hub.stages`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .constants import PHANTOM_N
from .errors import ConfigError
from .patterns.config import BankConfig
from .presets import PRESETS

# --------------------------------------------------------------------------- stage options


@dataclass(frozen=True)
class EmbedOptions:
    """How the backbone embeds the dataset (``lanic-hub embed``)."""

    batch_size: int = 64
    """Images per forward pass."""
    num_workers: int = 2
    """Image-decoding worker processes (and phantom-drawing processes); capped at the machine's
    cores, with a note when it is."""
    shard_size: int = 2048
    """Rows per embeddings shard (the unit of resuming and of streaming later stages)."""
    dtype: str = "float32"
    """Stored precision: float32, float16 or bfloat16."""
    autocast: str | None = None
    """'bf16' / 'fp16' on a GPU."""
    device: str | None = None
    """Default: cuda when available, else cpu."""
    text: bool = True
    """Also embed each report and its sentences with the text tower (naming, the text stream)."""


@dataclass(frozen=True)
class TrainOptions:
    """The classifier and the transcoder ensemble (``lanic-hub train``)."""

    preset: str = "phantom"
    """'phantom' (T=100, L=256, k=8) or 'paper' (T=100, L=2048, k=32)."""
    members: int | None = None
    """Ensemble size T (default: the preset's, 100)."""
    latents: int | None = None
    """Latents per transcoder L (default: the preset's, 2,048 or 256; the Matryoshka levels are
    then the default ones for this L)."""
    policy: str = "U-Ignore"
    """Uncertain (-1) labels: U-Ignore (left out), U-Ones (positive) or U-Zeros (negative)."""
    multimodal: bool | None = None
    """Add report and sentence embeddings to the transcoders' training stream; None: whenever the
    embeddings have them (better naming and image fidelity on the phantom world,
    docs/ensemble_phantom.md)."""
    activation: str = "topk"
    """'topk' or 'jumprelu' (learned thresholds with an L0 penalty; k becomes a cap)."""
    input_weight: float | None = None
    """λ > 0: the transcoders must also reconstruct their input e (loss FVU_h + λ FVU_e), so a
    latent that reads a device also writes it (docs/counterfactual_phantom.md, candidate (b)).
    None: the preset's."""
    steps: int | None = None
    """Transcoder optimiser steps (default: the preset's budget, for the stream in use)."""
    epochs: int | None = None
    """Train the transcoders for this many passes over their stream instead (default: the
    preset's step budget)."""

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; choose from {sorted(PRESETS)}")

    @property
    def n_members(self) -> int:
        """The ensemble size this run trains: ``members``, else the preset's."""
        return self.members or PRESETS[self.preset]["ensemble"]["n_members"]


@dataclass(frozen=True)
class ModelOptions:
    """The saved model folder and its card."""

    name: str = "CXR-LanIC"
    """The model's name in its card."""
    repo_id: str = "your-name/cxr-lanic"
    """Where you intend to publish it (used in the card's snippet)."""
    bundle_backbone: bool | None = None
    """Copy the backbone into the model folder (a self-contained offline copy). None: bundle the
    phantom CLIP (it lives in a local cache), reference anything else by its spec."""
    thumbnails: bool = True
    """Export gallery thumbnails where the data's licence allows (never MIMIC-CXR / CheXpert)."""


@dataclass(frozen=True)
class PipelineConfig:
    """The whole pipeline (``lanic-hub build --config FILE.yaml``: these are the YAML keys)."""

    out: str = "runs/quickstart"
    """Output folder: every stage's artefact, stages.json and summary.json."""
    data: str = "phantom"
    """'phantom' or a dataset spec: hf:PATH, mimic:PATH, chexpert:PATH, nih:PATH,
    folder:ROOT?csv=FILE&... (an image folder with a labels CSV) or a bare PATH
    (:mod:`lanic_hub.data.open`)."""
    phantom_n: int = PHANTOM_N
    """data: phantom only: how many phantoms to draw."""
    phantom_seed: int = 0
    """data: phantom only: the world's seed."""
    phantom_shortcuts: tuple[str, ...] = ()
    """Shortcut couplings of the phantom world, e.g. 'chest_tube:Atelectasis:0.9:train+validate'."""
    backbone: str = "phantom"
    """'phantom' (the cached phantom CLIP), hf-hub:REPO or local-dir:PATH."""
    backbone_revision: str | None = None
    """A Hub revision (commit, tag or branch) for an hf-hub: backbone."""
    embed: EmbedOptions = field(default_factory=EmbedOptions)
    """Embedding extraction."""
    train: TrainOptions = field(default_factory=TrainOptions)
    """Classifier and transcoder ensemble."""
    patterns: BankConfig = field(default_factory=BankConfig)
    """How latents become the pattern bank."""
    model: ModelOptions = field(default_factory=ModelOptions)
    """The model folder and its card."""
    evaluate: bool = True
    """Run the evaluation suite of the data (phantom / mimic-cxr / chexpert / nih, or the generic
    'data' suite for any other dataset: its test split) on the saved
    model with every baseline; its results go into the model card."""
    counterfactual_pairs: int = 40
    """On phantom data, the ``phantom-counterfactual`` suite runs after the evaluation (with
    10-member baselines): whether the explanations put a removed factor's effect on its patterns;
    its table goes into the card. This many pairs per factor (17 factors), items assigned on 25 and
    baselines trained on 50 phantoms per pair (at least 200 and 300); 0: skip the suite."""

    @classmethod
    def from_dict(cls, doc: dict[str, Any], where: str = "config") -> PipelineConfig:
        return _build(cls, doc, where)

    @classmethod
    def from_yaml(cls, path: str | Path) -> PipelineConfig:
        import yaml

        path = Path(path)
        if not path.is_file():
            packaged = packaged_config_dir() / path.name
            if not packaged.is_file():
                raise ConfigError(
                    f"{path}: no such config file (packaged configs: {', '.join(packaged_configs())})"
                )
            path = packaged
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        if not isinstance(doc, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        return _build(cls, doc, str(path))


def packaged_config_dir() -> Path:
    """Where the ready configs ship (``lanic_hub/resources/configs``)."""
    return Path(__file__).parent / "resources" / "configs"


def packaged_configs() -> list[str]:
    return sorted(p.name for p in packaged_config_dir().glob("*.yaml"))


def _build(cls, doc: dict[str, Any], where: str):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(doc) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(fields)}")
    kw = {}
    for k, v in doc.items():
        f = fields[k]
        sub = f.default_factory if f.default_factory is not dataclasses.MISSING else None
        if sub is not None and dataclasses.is_dataclass(sub):
            if not isinstance(v, dict):
                raise ConfigError(f"{where}: {k} must be a mapping")
            kw[k] = _build(sub, v, f"{where}: {k}")
        else:
            kw[k] = tuple(v) if isinstance(v, list) else v
    try:
        return cls(**kw)
    except ConfigError as exc:
        if str(exc).startswith(where):
            raise
        raise ConfigError(f"{where}: {exc}") from exc
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def is_embedded_default(cfg: PipelineConfig) -> bool:
    """Whether ``cfg`` builds the embedded default (the quickstart as documented): the same
    config but for where it writes, whether it evaluates and how many workers it uses."""
    same = dataclasses.replace(
        cfg,
        out=PipelineConfig.out,
        evaluate=True,
        embed=dataclasses.replace(cfg.embed, num_workers=EmbedOptions.num_workers, device=None),
    )
    return same == PipelineConfig()
