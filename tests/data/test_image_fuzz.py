"""Fuzzing the image loader (issue 9): every input gives a correct image or an ImageLoadError.

Hypothesis draws real files in every mode and container PIL writes (1-bit to 32-bit float,
palette, CMYK, RGBA, EXIF-rotated), DICOM datasets written by pydicom (8/16 bit, MONOCHROME1/2,
multi-frame, three transfer syntaxes, no pixel data, an undecodable compressed syntax), then
truncates, flips and splices their bytes. A decompression bomb is refused with memory bounded.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import warnings
import zlib

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGLSLossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from lanic_hub.data.images import load_image
from lanic_hub.errors import ImageLoadError

# LANIC_FUZZ_EXAMPLES=2000 for a longer hunt; CI runs 120 per property
FUZZ = settings(
    max_examples=int(os.environ.get("LANIC_FUZZ_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

MODES = ["1", "L", "P", "RGB", "RGBA", "CMYK", "LA", "I;16", "I", "F", "YCbCr", "HSV", "LAB"]
FORMATS = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "BMP": ".bmp", "GIF": ".gif", "WEBP": ".webp"}


def _check_rgb(im: Image.Image) -> np.ndarray:
    """The loader's contract: 8-bit RGB, grey replicated in the three channels."""
    assert isinstance(im, Image.Image) and im.mode == "RGB"
    a = np.asarray(im)
    assert a.dtype == np.uint8 and a.shape == (im.size[1], im.size[0], 3)
    assert np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 1], a[..., 2])
    return a[..., 0]


@st.composite
def pil_files(draw):
    """(bytes, extension, PIL source image, EXIF orientation) of a real file PIL wrote."""
    mode = draw(st.sampled_from(MODES))
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    w, h = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**31))
    orientation = draw(st.sampled_from([1, 1, 2, 3, 4, 5, 6, 7, 8]))
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L")
    if mode in ("I;16", "I", "F"):
        arr = rng.integers(0, 65536 if mode == "I;16" else 2**20, (h, w))
        src = Image.fromarray(
            arr.astype(np.uint16 if mode == "I;16" else np.int32 if mode == "I" else np.float32)
        )
    elif mode == "P":
        src = base.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE)
    else:
        src = base.convert(mode)
    kw = {}
    if orientation != 1 and fmt in ("JPEG", "TIFF", "PNG", "WEBP"):
        exif = Image.Exif()
        exif[0x0112] = orientation
        kw["exif"] = exif.tobytes()
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():  # Pillow deprecates writing I-mode PNGs; they still exist
            warnings.simplefilter("ignore", DeprecationWarning)
            src.save(buf, format=fmt, **kw)
    except (OSError, ValueError, KeyError, TypeError):
        from hypothesis import assume

        assume(False)  # PIL cannot write this mode to this container: not an input that exists
    ext = draw(st.sampled_from([FORMATS[fmt], FORMATS[fmt], ".png", ".jpg", ".dcm", ""]))
    return buf.getvalue(), ext, src, orientation if "exif" in kw else 1


@given(pil_files())
@FUZZ
def test_every_mode_and_container_loads_correctly(tmp_path_factory, f):
    data, ext, src, orientation = f
    path = tmp_path_factory.mktemp("fz") / f"upload{ext}"
    path.write_bytes(data)
    try:
        im = load_image(path)
    except ImageLoadError as exc:
        # legitimate refusals: a .dcm extension on a non-DICOM, or a file PIL wrote but cannot
        # read back itself (e.g. 1x1 subsampled YCbCr TIFF)
        if ext == ".dcm":
            assert "DICOM" in str(exc), exc
        else:
            with pytest.raises(Exception):  # noqa: B017 - any PIL failure
                Image.open(io.BytesIO(data)).load()
        return
    g = _check_rgb(im)
    w, h = src.size
    assert im.size == ((h, w) if orientation in (5, 6, 7, 8) else (w, h))
    assert np.array_equal(_check_rgb(load_image(data if ext != ".dcm" else data)), g) or ext == ".dcm"
    if src.mode == "L" and orientation == 1 and Image.open(io.BytesIO(data)).format in ("PNG", "TIFF", "BMP"):
        assert np.array_equal(g, np.asarray(src))  # lossless 8-bit grey comes back exactly


def _dicom_bytes(
    rows: int, cols: int, bits: int, frames: int, photometric: str, syntax: str, pixels: bool, seed: int
) -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(seed)
    dtype = np.uint8 if bits == 8 else np.uint16
    arr = rng.integers(0, 2**bits if bits == 8 else 4096, (frames, rows, cols)).astype(dtype)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = {
        "explicit": ExplicitVRLittleEndian,
        "implicit": ImplicitVRLittleEndian,
        "big": ExplicitVRBigEndian,
        "jpegls": JPEGLSLossless,
    }[syntax]
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = (
        bits,
        bits if bits == 8 else 12,
        (bits if bits == 8 else 12) - 1,
    )
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    if pixels:
        if syntax == "jpegls":  # encapsulated fragments that are not JPEG-LS: undecodable
            from pydicom.encaps import encapsulate

            ds.PixelData = encapsulate([rng.bytes(64) for _ in range(frames)])
            ds["PixelData"].VR = "OB"
        else:
            raw = arr if frames > 1 else arr[0]
            ds.PixelData = raw.astype(raw.dtype.newbyteorder(">") if syntax == "big" else raw.dtype).tobytes()
            ds["PixelData"].VR = "OB" if bits == 8 else "OW"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True, little_endian=syntax != "big", implicit_vr=syntax == "implicit")
    return buf.getvalue(), arr[0]


@st.composite
def dicoms(draw):
    args = dict(
        rows=draw(st.integers(1, 24)),
        cols=draw(st.integers(1, 24)),
        bits=draw(st.sampled_from([8, 16])),
        frames=draw(st.sampled_from([1, 1, 2, 3])),
        photometric=draw(st.sampled_from(["MONOCHROME1", "MONOCHROME2"])),
        syntax=draw(st.sampled_from(["explicit", "implicit", "big", "jpegls"])),
        pixels=draw(st.booleans() | st.just(True)),
        seed=draw(st.integers(0, 2**31)),
    )
    return (*_dicom_bytes(**args), args)


@given(dicoms())
@FUZZ
def test_dicom_variants_give_the_first_frame_or_a_typed_error(d):
    data, first, args = d
    try:
        im = load_image(data)
    except ImageLoadError as exc:
        if not args["pixels"]:
            assert "no pixel data" in str(exc)
        else:
            assert (
                args["syntax"] == "jpegls"
                and "cannot decode" in str(exc)
                and "1.2.840.10008.1.2.4.80" in str(exc)
            )
        return
    assert args["pixels"] and args["syntax"] != "jpegls"
    g = _check_rgb(im).astype(int)
    assert im.size == (args["cols"], args["rows"])
    if first.size > 16 and np.ptp(first) > 0:  # percentile windowing is monotone in the stored values
        r = np.corrcoef(g.ravel(), first.ravel().astype(float))[0, 1]
        assert (r < -0.9) if args["photometric"] == "MONOCHROME1" else (r > 0.9), r


def _valid_samples() -> list[bytes]:
    out = []
    for mode, fmt in [
        ("L", "PNG"),
        ("RGB", "JPEG"),
        ("I;16", "PNG"),
        ("P", "GIF"),
        ("CMYK", "TIFF"),
        ("RGBA", "WEBP"),
    ]:
        rng = np.random.default_rng(len(out))
        im = Image.fromarray(rng.integers(0, 256, (17, 23), dtype=np.uint8), "L")
        im = im.convert("RGB").convert("P") if mode == "P" else im if mode == "I;16" else im.convert(mode)
        if mode == "I;16":
            im = Image.fromarray(np.asarray(im).astype(np.uint16) * 200)
        buf = io.BytesIO()
        im.save(buf, format=fmt)
        out.append(buf.getvalue())
    out.append(_dicom_bytes(9, 11, 16, 2, "MONOCHROME1", "explicit", True, 0)[0])
    out.append(_dicom_bytes(9, 11, 8, 1, "MONOCHROME2", "implicit", True, 1)[0])
    return out


SAMPLES = _valid_samples()


@st.composite
def damaged(draw):
    """A valid file, then truncated, bit-flipped, spliced with junk, or all of these."""
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for op in draw(st.lists(st.sampled_from(["truncate", "flip", "splice", "zero"]), min_size=1, max_size=3)):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "truncate":
            data = data[:i]
        elif op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "splice":
            data[i:i] = draw(st.binary(min_size=1, max_size=64))
        else:
            data[i : i + draw(st.integers(1, 64))] = b""
    return bytes(data)


@given(damaged(), st.sampled_from([".png", ".jpg", ".dcm", ".bin"]))
@FUZZ
def test_damaged_bytes_give_an_image_or_a_typed_error(tmp_path_factory, data, ext):
    path = tmp_path_factory.mktemp("dmg") / f"x{ext}"
    path.write_bytes(data)
    for src in (path, data):
        try:
            _check_rgb(load_image(src))
        except ImageLoadError as exc:
            assert str(exc), "a typed error with a reason"


@given(st.binary(max_size=600))
@FUZZ
def test_random_bytes_give_an_image_or_a_typed_error(data):
    for prefix in (b"", b"\x89PNG\r\n\x1a\n", b"\x00" * 128 + b"DICM", b"\xff\xd8\xff"):
        try:
            _check_rgb(load_image(prefix + data))
        except ImageLoadError:
            pass


def _png_header_bomb(w: int, h: int) -> bytes:
    """A 20000x20000 PNG whose few compressed bytes would inflate to 400 MB."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * ((w + 1) * 64), 9)  # 64 rows; the decoder would allocate all h
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


BOMB_SCRIPT = r"""
import json, resource, sys
from lanic_hub.data.images import load_image
from lanic_hub.errors import ImageLoadError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
msgs = []
for p in sys.argv[1:]:
    try:
        load_image(p)
        msgs.append("loaded")
    except ImageLoadError as exc:
        msgs.append(str(exc))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"grew_kib": after - before, "msgs": msgs}))
"""


def test_decompression_bombs_are_refused_with_bounded_memory(tmp_path):
    png = tmp_path / "bomb.png"
    png.write_bytes(_png_header_bomb(20000, 20000))
    # the same bomb one notch under PIL's own limit, so that only lanic-hub's guard stands
    png2 = tmp_path / "bomb2.png"
    png2.write_bytes(_png_header_bomb(12000, 7000))
    ds = pydicom.dcmread(io.BytesIO(_dicom_bytes(4, 4, 16, 1, "MONOCHROME2", "explicit", True, 0)[0]))
    ds.Rows = ds.Columns = 20000  # header claims 800 MB; pixel data is 32 bytes
    dcm = tmp_path / "bomb.dcm"
    ds.save_as(dcm)
    r = subprocess.run(
        [sys.executable, "-c", BOMB_SCRIPT, str(png), str(png2), str(dcm)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert all("pixel" in m or "bomb" in m for m in res["msgs"]), res["msgs"]
    assert "20000x20000" in res["msgs"][2]
    assert res["grew_kib"] < 100 * 1024, f"loading three bombs grew the process by {res['grew_kib']} KiB"


def test_one_by_one_and_exif_rotation_are_exact():
    a = np.array([[10, 20, 30], [40, 50, 60]], dtype=np.uint8)  # 3 wide, 2 high
    for orientation, want in [(1, a), (3, a[::-1, ::-1]), (6, np.rot90(a, -1)), (8, np.rot90(a))]:
        exif = Image.Exif()
        exif[0x0112] = orientation
        buf = io.BytesIO()
        Image.fromarray(a, "L").save(buf, format="PNG", exif=exif.tobytes())
        assert np.array_equal(_check_rgb(load_image(buf.getvalue())), want), orientation
    buf = io.BytesIO()
    Image.new("L", (1, 1), 77).save(buf, format="PNG")
    assert _check_rgb(load_image(buf.getvalue())).tolist() == [[77]]
