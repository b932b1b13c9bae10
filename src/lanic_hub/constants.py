"""Names shared by every stage."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:  # one source of truth: pyproject.toml's version, as installed
    VERSION: str = version("lanic-hub")
    """The package's version (``lanic_hub.__version__``), recorded in manifests and results."""
except PackageNotFoundError:  # a source tree on sys.path, never installed
    VERSION = "0.0.0+unknown"

#: Phantoms the embedded default draws (``lanic-hub quickstart``, the phantom evaluation suites),
#: world seed 0: written here once, every default of a phantom count reads it.
PHANTOM_N: int = 2000

#: The five findings every LanIC model predicts, in output order.
FINDINGS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Pleural Effusion",
)

#: The 14 CheXpert / MIMIC-CXR labeller observations, in the order of the official CSVs.
CHEXPERT_LABELS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Enlarged Cardiomediastinum",
    "Fracture",
    "Lung Lesion",
    "Lung Opacity",
    "No Finding",
    "Pleural Effusion",
    "Pleural Other",
    "Pneumonia",
    "Pneumothorax",
    "Support Devices",
)
