"""The image loader on real files: DICOM (JPEG 2000, MONOCHROME1), 8/16-bit PNG, RGBA, and bad input."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pydicom
import pytest
from PIL import Image

from lanic_hub.data.images import load_gray, load_image
from lanic_hub.errors import ImageLoadError


def test_real_dicom_monochrome1_j2k(shared_data):
    path = shared_data / "cxr_real" / "dicom" / "pydicom-data_RG1_J2KI.dcm"
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    im = load_image(path)
    assert im.mode == "RGB" and im.size == (ds.Columns, ds.Rows)
    g = np.asarray(im.convert("L")).astype(float)
    raw = ds.pixel_array.astype(float)
    # MONOCHROME1: high stored values are dark, so the loaded image is anti-correlated with them
    assert np.corrcoef(g.ravel()[::97], raw.ravel()[::97])[0, 1] < -0.9
    assert g.min() <= 5 and g.max() >= 250


def test_dicom_without_pixel_data(shared_data, tmp_path):
    ds = pydicom.dcmread(shared_data / "cxr_real" / "dicom" / "pydicom-data_RG1_J2KI.dcm")
    del ds.PixelData
    out = tmp_path / "nopix.dcm"
    ds.save_as(out)
    with pytest.raises(ImageLoadError, match="no pixel data"):
        load_image(out)


def test_png_8_and_16_bit_and_rgba(shared_data, tmp_path):
    real = shared_data / "cxr_real" / "images" / "nih_00000001_000_1024.png"
    g8 = load_gray(real)
    assert g8.shape == (1024, 1024)
    a16 = g8.astype(np.uint16) * 257 // 4  # 14-bit range stored in 16-bit PNG
    p16 = tmp_path / "x16.png"
    Image.fromarray(a16.astype(np.uint16)).save(p16)
    g16 = load_gray(p16)
    assert g16.max() >= 250 and np.corrcoef(g16.ravel(), g8.ravel())[0, 1] > 0.99
    rgba = Image.fromarray(g8).convert("RGBA")
    assert np.array_equal(load_gray(rgba), g8)
    assert np.array_equal(load_gray(np.asarray(g8)), g8)


@pytest.mark.parametrize(
    "payload,reason",
    [
        (b"", "empty"),
        (b"this is not an image at all", "not an image"),
        ("truncated", "corrupt or truncated"),
    ],
)
def test_bad_files_get_typed_errors(tmp_path, shared_data, payload, reason):
    p = tmp_path / "bad.png"
    if payload == "truncated":
        payload = (shared_data / "cxr_real" / "images" / "nih_00000001_000_1024.png").read_bytes()[:5000]
    p.write_bytes(payload)
    with pytest.raises(ImageLoadError, match=reason) as e:
        load_image(p)
    assert str(p) in str(e.value)


def test_missing_file_and_bomb_guard(tmp_path):
    with pytest.raises(ImageLoadError, match="file not found"):
        load_image(tmp_path / "nope.jpg")
    buf = io.BytesIO()
    Image.new("L", (300, 300)).save(buf, format="PNG")
    with pytest.raises(ImageLoadError, match="pixel"):
        load_image(buf.getvalue(), max_pixels=10_000)


def test_wrong_extension_still_loads(shared_data, tmp_path):
    src = shared_data / "cxr_real" / "images" / "nih_00000003_000_128.png"
    dst = tmp_path / "really_png.jpg"
    shutil.copy(src, dst)
    assert np.array_equal(load_gray(dst), load_gray(src))
