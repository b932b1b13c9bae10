"""One image loader for every path: JPEG, PNG (8/16 bit), DICOM, PIL images and arrays.

It returns an 8-bit RGB ``PIL.Image`` (grey replicated), which is what open_clip's
preprocessing expects. Anything unreadable raises :class:`~lanic_hub.errors.ImageLoadError`
naming the source and the reason, never a traceback from deep inside PIL or pydicom.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImageLoadError

#: Decompression-bomb guard: images above this many pixels are refused before decoding.
MAX_PIXELS = 64_000_000
#: Files larger than this are refused before reading (a radiograph is at most tens of MB).
MAX_FILE_BYTES = 1 << 30

ImageSource = str | Path | bytes | dict | Image.Image | np.ndarray


def _to_uint8(arr: np.ndarray, window: tuple[float, float] | None = None) -> np.ndarray:
    """Map any numeric array to 0..255, by ``window`` or by the 0.5 / 99.5 percentiles."""
    a = np.asarray(arr, dtype=np.float64)
    if not np.isfinite(a).all():
        a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    if window is None:
        lo, hi = np.percentile(a, (0.5, 99.5)) if a.size > 16 else (a.min(), a.max())
    else:
        lo, hi = window
    if hi <= lo:
        hi = lo + 1.0
    return (np.clip((a - lo) / (hi - lo), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _gray_to_rgb(gray: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(gray), mode="L").convert("RGB")


def _is_dicom(data: bytes, path: str) -> bool:
    if len(data) >= 132 and data[128:132] == b"DICM":
        return True
    return path.lower().endswith((".dcm", ".dicom"))


def _load_dicom(data: bytes, name: str, max_pixels: int) -> Image.Image:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut, pixel_array

    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=data[128:132] != b"DICM")
        has_pixels = "PixelData" in ds or "FloatPixelData" in ds
        rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except Exception as exc:  # damaged headers surface as many types; all mean "unreadable"
        raise ImageLoadError(name, f"not a readable DICOM file ({type(exc).__name__}: {exc})") from None
    if not has_pixels:
        raise ImageLoadError(name, "DICOM has no pixel data (PixelData element missing)")
    if rows * cols > max_pixels:
        raise ImageLoadError(name, f"{cols}x{rows} exceeds the {max_pixels}-pixel guard")
    try:  # only the first frame is decoded: it is the radiograph, and memory stays one frame
        arr = pixel_array(ds, index=0) if frames > 1 else ds.pixel_array
    except Exception as exc:  # pydicom raises many types for codecs; all mean "cannot decode"
        tsuid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
        raise ImageLoadError(
            name,
            f"cannot decode pixel data (transfer syntax {tsuid}): {exc}. "
            "Compressed DICOM needs pylibjpeg + pylibjpeg-openjpeg (installed with lanic-hub).",
        ) from None
    try:
        if arr.ndim == 3:  # colour DICOM (secondary capture)
            arr = arr.mean(axis=-1)
        if arr.ndim != 2 or arr.size == 0:
            raise ValueError(f"pixel array has shape {arr.shape}")
        arr = apply_modality_lut(arr, ds)
        if "WindowCenter" in ds or "VOILUTSequence" in ds:
            try:
                arr = apply_voi_lut(arr, ds)
            except Exception:  # a broken VOI LUT falls back to percentile windowing
                pass
        gray = _to_uint8(arr)
        if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
            gray = 255 - gray  # MONOCHROME1: high values are dark
    except Exception as exc:  # inconsistent LUT / rescale attributes in a damaged header
        raise ImageLoadError(
            name, f"cannot interpret the DICOM pixel data ({type(exc).__name__}: {exc})"
        ) from None
    return _gray_to_rgb(gray)


def _from_pil(im: Image.Image, name: str, max_pixels: int) -> Image.Image:
    w, h = im.size
    if w * h > max_pixels:
        raise ImageLoadError(name, f"{w}x{h} exceeds the {max_pixels}-pixel decompression guard")
    if w < 1 or h < 1:
        raise ImageLoadError(name, f"empty image ({w}x{h})")
    try:
        im.load()
    except Exception as exc:  # PIL decoders raise many types on damaged data; all mean "corrupt"
        raise ImageLoadError(name, f"corrupt or truncated image data ({exc})") from None
    try:
        im = ImageOps.exif_transpose(im) or im
    except Exception:  # a damaged EXIF block: keep the stored orientation
        pass
    mode = im.mode
    try:
        if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
            return _gray_to_rgb(_to_uint8(np.asarray(im)))
        if mode == "LAB":
            return im.getchannel("L").convert("RGB")  # lightness is the grey image
        if mode == "HSV":
            im = im.convert("RGB")
        if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            bg = Image.new("RGBA", im.size, (0, 0, 0, 255))
            im = Image.alpha_composite(bg, im)
        return im.convert("L").convert("RGB")
    except (OSError, ValueError) as exc:
        raise ImageLoadError(name, f"unsupported image mode {mode!r} ({exc})") from None


def load_image(source: ImageSource, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Load a radiograph as an 8-bit RGB PIL image.

    ``source`` may be a path, raw bytes, a ``{"path", "bytes"}`` dict (a ``datasets.Image``
    cell stored undecoded), a PIL image or a 2-D / 3-D numpy array.

    >>> from lanic_hub.data.images import load_image
    >>> im = load_image("../shared/data/cxr_real/dicom/pydicom-data_RG1_J2KI.dcm")  # doctest: +SKIP
    """
    if isinstance(source, Image.Image):
        return _from_pil(source, "<PIL image>", max_pixels)
    if isinstance(source, np.ndarray):
        if source.ndim == 3 and source.shape[-1] in (3, 4):
            source = source[..., :3].mean(axis=-1)
        if source.ndim != 2 or source.size == 0:
            raise ImageLoadError("<array>", f"expected a 2-D image array, got shape {source.shape}")
        if source.size > max_pixels:
            raise ImageLoadError("<array>", f"{source.shape} exceeds the {max_pixels}-pixel guard")
        gray = source if source.dtype == np.uint8 else _to_uint8(source)
        return _gray_to_rgb(gray)
    data: bytes | None = None
    name = "<bytes>"
    if isinstance(source, dict):
        data, p = source.get("bytes"), source.get("path")
        name = str(p) if p else name
        if data is None and not p:
            raise ImageLoadError("<dict>", "image cell has neither 'bytes' nor 'path'")
        if data is None:
            source = p
    if isinstance(source, bytes):
        data = source
    elif isinstance(source, (str, Path)) and data is None:
        name = str(source)
        path = Path(source)
        if not path.is_file():
            raise ImageLoadError(name, "file not found")
        size = path.stat().st_size
        if size == 0:
            raise ImageLoadError(name, "file is empty (0 bytes)")
        if size > MAX_FILE_BYTES:
            raise ImageLoadError(name, f"{size} bytes exceeds the {MAX_FILE_BYTES}-byte file guard")
        # decode from memory: PIL's file-path TIFF route drops EXIF orientation without applying it
        data = path.read_bytes()
    if data is None or not isinstance(data, (bytes, bytearray)):
        raise ImageLoadError(name, f"cannot read an image from a {type(source).__name__}")
    data = bytes(data)
    if len(data) == 0:
        raise ImageLoadError(name, "empty data (0 bytes)")
    if _is_dicom(data, name):
        return _load_dicom(data, name, max_pixels)
    try:
        im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageLoadError(name, "not an image format PIL or pydicom can read") from None
    except Exception as exc:  # damaged headers raise many types (SyntaxError, struct.error, ...)
        raise ImageLoadError(name, f"{type(exc).__name__}: {exc}") from None
    return _from_pil(im, name, max_pixels)


def load_gray(source: ImageSource, **kw: Any) -> np.ndarray:
    """Like :func:`load_image`, as a 2-D uint8 array."""
    return np.asarray(load_image(source, **kw).convert("L"))
