"""Data layer: one ``datasets.Dataset`` schema for phantoms, MIMIC-CXR-JPG, CheXpert, NIH and folders."""

from .chexpert import load_chexpert
from .folder import load_folder
from .images import load_gray, load_image
from .mimic import load_mimic_cxr
from .nih import load_nih
from .schema import (
    CHEXPERT,
    MIMIC_CXR,
    NIH,
    PHANTOM,
    DataSource,
    label_matrix,
    require_redistributable,
    source_of,
)

__all__ = [
    "load_chexpert",
    "load_folder",
    "load_gray",
    "load_image",
    "load_mimic_cxr",
    "load_nih",
    "CHEXPERT",
    "MIMIC_CXR",
    "NIH",
    "PHANTOM",
    "DataSource",
    "label_matrix",
    "require_redistributable",
    "source_of",
]
