"""How latents become the pattern bank: :class:`BankConfig` (no torch, so that the command line
and the pipeline's YAML parsing import it cheaply)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from ..errors import ConfigError


@dataclass(frozen=True)
class BankConfig:
    """How latents become the bank. Every threshold is recorded in the bank's metadata."""

    gallery_size: int = 20
    """Top-activating images kept per pattern (and per latent, for text coherence)."""
    cos_threshold: float = 0.7
    """Latents of two members merge when their encoder directions have at least this cosine ..."""
    corr_threshold: float = 0.5
    """... and their activations on the sample rows at least this correlation."""
    min_support: int = 5
    """A pattern is kept when at least this many members found it (stability)."""
    min_frequency: float = 0.002
    """... its member latents fire, on average, on at least this fraction of images ..."""
    max_frequency: float = 0.9
    """... and on at most this fraction (always-on directions are offsets, not patterns) ..."""
    min_ms: float = 0.0
    """... and has a MonoSemanticity score of at least this."""
    dense_frequency: float = 0.5
    """A kept pattern whose member latents fire on more than this share of images is *dense*: shown
    apart, as context (what most images have), never named as a finding."""
    name_label_auroc: float = 0.8
    """A pattern is named after a finding that a report label covers (``REPORT_LABEL``) only if its
    activation detects that label with at least this AUROC on the sample rows; below it the pattern
    is shown unnamed, with its nearest phrase. The naming thresholds were chosen on held-out
    phantoms for naming precision >= 90% (eval/calibrate_naming.py)."""
    name_gallery_share: float = 0.0
    """A pattern is named after a device only if, besides the AUROC, at least this share of its
    gallery images have the devices label in their reports (the label does not say which device;
    the name does). 0: the AUROC alone (what the calibration chose)."""
    name_confidence: float = 0.0
    """... and only if its naming confidence (the softmax over concepts) is at least this."""
    report_naming: bool = True
    """Where the dataset has reports, name patterns after the report concepts that support them
    (:mod:`lanic_hub.patterns.naming`): a sparse pattern by the precision and lift of its gallery,
    a dense one ("..., graded") by how its magnitude ranks the concept. This rule then decides
    whether a pattern is named; without reports, the label rule below does."""
    name_precision: float = 0.7
    """Report naming, sparse: share of the gallery whose report states the concept ..."""
    name_lift: float = 3.0
    """... and that share over the concept's base rate ..."""
    name_max_other: float = 0.6
    """... and no other concept that passes the lift reaches this share of the gallery (an
    ambiguous gallery abstains)."""
    name_graded_auroc: float = 0.9
    """Report naming, dense: AUROC of the pattern's magnitude for the concept. The report naming
    thresholds are the loosest that reached naming precision 0.9 against the ground truth of
    1,000 phantoms of seed 7003 (names from the quickstart's own reports; precision reported on
    seed 7001, which chose nothing: eval/calibrate_report_naming.py,
    docs/report_naming_calibration.md)."""
    name_unlabelled: bool = False
    """Whether concepts no report label covers (artifacts, anatomy) may be named at all: nothing in
    the data can support such a name, and on phantoms their names were right too rarely."""
    sample_rows: int = 4096
    """Rows (a fixed random sample) on which activation profiles and label AUROCs are computed."""
    batch_size: int = 512
    """Embedding rows per streamed batch."""
    naming: str = "both"
    """Name from the gallery's mean embedding ('gallery'), the encoder direction ('direction'), or
    the average of both views ('both': best on the phantom world, see docs/patterns_phantom.md)."""
    typical_sentences: int = 3
    """Most typical report sentences stored per pattern."""
    seed: int = 0
    """Seed of the sample rows and of the random-gallery coherence baseline."""

    def __post_init__(self) -> None:
        if self.naming not in ("gallery", "direction", "both"):
            raise ConfigError(f"naming must be 'gallery', 'direction' or 'both', not {self.naming!r}")
        if not 0 <= self.min_frequency <= self.max_frequency <= 1:
            raise ConfigError(f"need 0 <= min_frequency <= max_frequency <= 1: {self}")
        if min(self.gallery_size, self.min_support, self.sample_rows, self.batch_size) < 1:
            raise ConfigError(f"sizes must be >= 1: {self}")

    @classmethod
    def from_dict(cls, d: dict | None) -> BankConfig:
        """The config a bank recorded (``bank_meta["config"]``); keys this version does not know
        (a newer bank's) are left out, missing ones take their defaults (an older bank's)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (d or {}).items() if k in known})
