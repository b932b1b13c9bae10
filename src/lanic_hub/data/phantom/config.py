"""Knobs of the phantom world. Every field is documented; validation is in ``__post_init__``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ...constants import FINDINGS
from ...errors import ConfigError
from .case import ARTIFACT_FACTORS, DEVICE_FACTORS

SPLITS: tuple[str, ...] = ("train", "validate", "test")


@dataclass(frozen=True)
class ShortcutSpec:
    """Couple a device or artifact to a finding, in chosen splits only.

    With probability ``strength`` an image in ``splits`` gets ``factor`` exactly when it has
    ``finding`` (and lacks it otherwise); the rest keep their independently drawn value. ``anti``:
    the other way round, the factor exactly where the finding is absent (a test split on which a
    model that learned the shortcut is wrong every time it uses it).
    Real models learn such shortcuts; the eval harness checks that explanations reveal them.
    """

    factor: str
    """A device or artifact factor name, e.g. 'portable_marker' or 'chest_tube'."""
    finding: str
    """A finding name from ``FINDINGS``, e.g. 'Edema'."""
    strength: float = 0.9
    """Probability, per image, that the coupling is applied (0 = none, 1 = always)."""
    splits: tuple[str, ...] = ("train",)
    """Splits in which the coupling holds; elsewhere the factor is drawn independently."""
    anti: bool = False
    """Anti-coupled: the factor appears exactly where the finding does not."""

    def __post_init__(self) -> None:
        if self.factor not in DEVICE_FACTORS + ARTIFACT_FACTORS:
            raise ConfigError(
                f"shortcut factor {self.factor!r} is not a device or artifact; "
                f"choose from {DEVICE_FACTORS + ARTIFACT_FACTORS}"
            )
        if self.finding not in FINDINGS:
            raise ConfigError(f"shortcut finding {self.finding!r} is not one of {FINDINGS}")
        if not 0.0 <= self.strength <= 1.0:
            raise ConfigError(f"shortcut strength must be in [0, 1], got {self.strength}")
        bad = set(self.splits) - set(SPLITS)
        if bad:
            raise ConfigError(f"shortcut splits {sorted(bad)} unknown; use {SPLITS}")

    @classmethod
    def parse(cls, text: str) -> ShortcutSpec:
        """Parse the CLI form ``factor:Finding[:strength[:split+split]]``; a ``!`` before the
        finding (``chest_tube:!Atelectasis``) anti-couples them."""
        parts = text.split(":")
        if len(parts) < 2:
            raise ConfigError(
                f"shortcut {text!r}: expected 'factor:Finding[:strength[:split+split]]', "
                "e.g. 'portable_marker:Edema:0.9:train'"
            )
        anti = parts[1].startswith("!")
        kw: dict[str, Any] = {"factor": parts[0], "finding": parts[1].lstrip("!"), "anti": anti}
        try:
            if len(parts) > 2:
                kw["strength"] = float(parts[2])
        except ValueError as exc:
            raise ConfigError(f"shortcut {text!r}: strength {parts[2]!r} is not a number") from exc
        if len(parts) > 3:
            kw["splits"] = tuple(parts[3].split("+"))
        return cls(**kw)


@dataclass(frozen=True)
class PhantomConfig:
    """How the phantom world is drawn and reported. Defaults are the calibrated embedded world."""

    image_size: int = 224
    """Side of the square 8-bit grayscale image, in pixels (32..2048)."""
    severity_mix: tuple[float, float, float, float] = (0.30, 0.30, 0.25, 0.15)
    """Probabilities of the subtle / mild / moderate / severe bands for a present finding."""
    prevalence_scale: float = 1.0
    """Multiplies every finding's base rate (co-occurrence structure is kept)."""
    image_noise: float = 1.0
    """Scale of quantum noise and anatomical texture; 0 gives a clean image."""
    label_noise: float = 0.04
    """Probability that the report flips a finding (a miss, or a false call) after the read."""
    uncertainty_rate: float = 0.10
    """Probability that a finding the report mentions is hedged ('cannot exclude'): label -1."""
    subtle_miss_rate: float = 0.35
    """Probability that a subtle finding (severity -> 0) goes unreported; falls to 0 at 0.5."""
    omit_negative_rate: float = 0.35
    """Probability that an absent finding is not mentioned at all (label blank)."""
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    """Patient-level train / validate / test fractions."""
    shortcuts: tuple[ShortcutSpec, ...] = ()
    """Couplings between a device/artifact and a finding (see ``ShortcutSpec``)."""
    studies_per_patient: tuple[int, int] = (1, 3)
    """Inclusive range of studies (one frontal image each) per patient."""

    def __post_init__(self) -> None:
        if not 32 <= self.image_size <= 2048:
            raise ConfigError(f"image_size must be in 32..2048, got {self.image_size}")
        for name in ("severity_mix", "split_fractions"):
            v = getattr(self, name)
            if any(x < 0 for x in v) or abs(sum(v) - 1.0) > 1e-6:
                raise ConfigError(f"{name} must be non-negative and sum to 1, got {v}")
        for name in ("label_noise", "uncertainty_rate", "subtle_miss_rate", "omit_negative_rate"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"{name} must be a probability in [0, 1], got {v}")
        if self.prevalence_scale < 0 or self.image_noise < 0:
            raise ConfigError("prevalence_scale and image_noise must be >= 0")
        lo, hi = self.studies_per_patient
        if not 1 <= lo <= hi:
            raise ConfigError(f"studies_per_patient must satisfy 1 <= lo <= hi, got {(lo, hi)}")
        names = [s.factor for s in self.shortcuts]
        if len(names) != len(set(names)):
            raise ConfigError(f"each factor may carry one shortcut, got {names}")

    def clean(self) -> PhantomConfig:
        """The same world with every source of label noise off (reports state the truth)."""
        from dataclasses import replace

        return replace(
            self, label_noise=0.0, uncertainty_rate=0.0, subtle_miss_rate=0.0, omit_negative_rate=0.0
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PhantomConfig:
        d = dict(d)
        d["shortcuts"] = tuple(
            ShortcutSpec(**{**s, "splits": tuple(s["splits"])}) for s in d.get("shortcuts", ())
        )
        for k in ("severity_mix", "split_fractions", "studies_per_patient"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)
