"""Draw a :class:`Case` as an 8-bit frontal chest radiograph.

The picture is built as an attenuation map ``A`` (bright = dense), from analytic soft masks for
smooth anatomy and PIL line drawing for thin structures (vessels, devices, Kerley lines), then
mapped to grey levels with exposure and quantum noise. Coordinates are normalised: x runs 0..1
from image left (the patient's right, PA convention) to image right, y runs 0..1 top to bottom.

Every component draws from its own random stream, keyed by ``(seed, index, component)``: a
control image with one factor switched off differs from the original only where that factor is.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .case import Case

_F = np.float32
#: Bumped whenever the pictures change, so caches built on phantoms (the phantom CLIP) are redone.
RENDER_VERSION = 3


def _rng(seed: int, index: int, component: str) -> np.random.Generator:
    return np.random.default_rng((seed, index, zlib.crc32(component.encode())))


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(size, dtype=_F) + 0.5) / size
    return c[None, :].repeat(size, 0), c[:, None].repeat(size, 1)


@lru_cache(maxsize=32)
def _text_stamp(text: str, height: int) -> np.ndarray:
    """A bright text stamp (like a lead letter marker), rendered once per size."""
    font = ImageFont.load_default(size=max(6, height))
    box = font.getbbox(text)
    w, h = box[2] - box[0] + 4, box[3] - box[1] + 4
    im = Image.new("L", (w, h), 0)
    ImageDraw.Draw(im).text((2 - box[0], 2 - box[1]), text, fill=255, font=font)
    return np.asarray(im, dtype=_F) / 255.0


def _soft(d: np.ndarray, edge: float) -> np.ndarray:
    """Soft inside-mask from a signed distance (positive inside), ramp width ``edge``."""
    return np.clip(d * (1.0 / edge) + 0.5, 0.0, 1.0)


def _ellipse(x, y, cx, cy, rx, ry, edge):
    d = 1.0 - np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
    return _soft(d * min(rx, ry), edge)


def _bezier(p0, p1, p2, n: int = 24) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * np.asarray(p0) + 2 * (1 - t) * t * np.asarray(p1) + t**2 * np.asarray(p2)


@dataclass
class _Geometry:
    """Where the anatomy sits in this image (normalised units)."""

    mid: float  # mediastinum centre (moves with rotation)
    spine: float
    tw: float  # thoracic half-width to the inner rib margin
    apex: float
    dia: dict[str, float]  # hemidiaphragm dome top per image side: 'R' (image left), 'L'
    hilum_y: float


class _Canvas:
    """Grids, the view transform (collimation crops) and PIL layers for line drawing."""

    def __init__(self, size: int, zoom: float, off: tuple[float, float]) -> None:
        gx, gy = _grid(size)
        self.size, self.zoom, self.off = size, zoom, off
        self.x = (gx - 0.5) * zoom + 0.5 + off[0]
        self.y = (gy - 0.5) * zoom + 0.5 + off[1]
        self.px_per_unit = size / zoom

    def px(self, pts: np.ndarray) -> list[tuple[float, float]]:
        p = (np.asarray(pts, dtype=float) - 0.5 - np.asarray(self.off)) / self.zoom + 0.5
        p *= self.size
        return [tuple(q) for q in p.reshape(-1, 2)]

    def layer(self) -> tuple[Image.Image, ImageDraw.ImageDraw]:
        im = Image.new("L", (self.size, self.size), 0)
        return im, ImageDraw.Draw(im)

    def width(self, w: float) -> int:
        return max(1, int(round(w * self.px_per_unit)))

    def blurred(self, im: Image.Image, radius: float) -> np.ndarray:
        r = radius * self.px_per_unit / 224.0
        if r > 0.3:  # one box pass (std ~ r): half the cost of PIL's three-pass Gaussian
            im = im.filter(ImageFilter.BoxBlur(r))
        return np.asarray(im, dtype=_F) * _F(1.0 / 255.0)


@lru_cache(maxsize=16)
def _canvas(size: int, zoom: float, off: tuple[float, float]) -> _Canvas:
    """Canvases are read-only after construction, so the common un-cropped ones are shared."""
    return _Canvas(size, zoom, off)


def _lung(cv: _Canvas, g: _Geometry, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Soft mask of one lung, with its (u, v) coordinates: u medial 0 -> lateral 1, v apex 0 -> base 1."""
    sg = -1.0 if side == "R" else 1.0
    dia = g.dia[side]
    t = np.clip((cv.y - g.apex) / (dia - g.apex), 0.0, 1.0)
    x_med = g.mid + sg * (0.045 + 0.02 * t)
    x_lat = g.mid + sg * g.tw * (1.0 - 0.32 * (1.0 - t) ** 2)
    lw = np.abs(x_lat - x_med)
    u = (cv.x - x_med) * sg / lw
    top = g.apex + 0.05 * ((u - 0.45) / 0.55) ** 2
    bot = dia + np.where(u > 0.4, 0.085 * ((u - 0.4) / 0.6) ** 2, 0.03 * ((0.4 - u) / 0.4) ** 2)
    d = np.minimum(np.minimum(cv.y - top, bot - cv.y), np.minimum(u, 1.0 - u) * lw)
    return _soft(d, 0.012), u, t


def render(case: Case, size: int = 224, seed: int = 0, index: int = 0, noise: float = 1.0) -> np.ndarray:
    """Render ``case`` to a ``(size, size)`` uint8 array. Deterministic in ``(seed, index)``."""
    a, rot = case.anatomy, case.rotation
    zoom, off = 1.0, (0.0, 0.0)
    if case.collimation:
        r = _rng(seed, index, "collimation")
        zoom = float(r.uniform(0.78, 0.9))
        off = (float(r.uniform(-0.06, 0.06)), float(r.uniform(0.02, 0.08)))
    # smooth anatomy is computed at half resolution and upsampled; thin lines are drawn at full
    cv, lo = _canvas(size, zoom, off), _canvas(max(32, size // 2), zoom, off)
    x, y = lo.x, lo.y
    tw = 0.33 + 0.05 * a.habitus
    dia_r = 0.74 - 0.08 * a.inspiration
    g = _Geometry(
        mid=0.5 + 0.04 * rot,
        spine=0.5 + 0.005 * rot,
        tw=tw,
        apex=0.15 - 0.02 * a.inspiration,
        dia={"R": dia_r, "L": dia_r + 0.025},
        hilum_y=0.42,
    )
    atel = case.findings["atelectasis"]
    if atel.present:  # volume loss: the hemidiaphragm on that side rises
        lift = 0.01 + 0.06 * atel.severity
        for s, name in (("R", "right"), ("L", "left")):
            if atel.side in (name, "bilateral"):
                g.dia[s] -= lift
    A = np.zeros_like(x)
    rj = _rng(seed, index, "anatomy")

    # --- body: neck, rounded shoulders, chest wall and abdomen ---
    st = 0.06 + 0.08 * a.habitus
    half = 0.09 + (tw + st - 0.09) * np.clip((y - 0.02) / 0.16, 0, 1) ** 0.45
    body = _soft(half - np.abs(x - 0.5 - 0.5 * (g.mid - 0.5)), 0.03)
    A += (0.52 + 0.08 * a.habitus) * body
    for sg in (-1.0, 1.0):  # humeral heads
        A += 0.12 * _ellipse(x, y, 0.5 + sg * (tw + st + 0.02), 0.17, 0.06, 0.07, 0.015)

    # --- lungs, cut out by heart, aortic knob and mediastinum ---
    lung_r, u_r, v_r = _lung(lo, g, "R")
    lung_l, u_l, v_l = _lung(lo, g, "L")
    ctr = case.ctr
    hw = ctr * tw  # half of the heart's full width
    hh = 0.17 + 0.12 * (ctr - 0.45)
    hx, hy = g.mid + hw / 3.0, g.dia["L"] - 0.02
    heart = _ellipse(x, y, hx, hy, hw, hh, 0.02)
    pedicle = _soft(0.06 - np.abs(x - g.mid - 0.01), 0.02) * _soft(hy - y, 0.02)
    knob = _ellipse(x, y, g.mid + 0.055, 0.31, 0.04, 0.035, 0.02)
    occl = np.maximum(np.maximum(heart, knob), pedicle)
    lungs = lung_r + lung_l
    depth = 0.78 + 0.22 * np.clip(np.sin(np.pi * np.clip(np.where(x < g.mid, u_r, u_l), 0, 1)), 0, 1)
    A -= 0.34 * lungs * (1.0 - 0.95 * occl) * depth

    # --- spine, trachea, hila ---
    A += 0.035 * _soft(0.028 - np.abs(x - g.spine), 0.012) * (1.0 + 0.3 * np.cos(y * 140.0))
    trachea = _soft(0.016 - np.abs(x - g.mid + 0.03 * (y - 0.2)), 0.008) * _soft(0.34 - y, 0.02)
    A -= 0.09 * trachea * body
    for sg in (-1.0, 1.0):
        A += 0.06 * np.exp(-(((x - g.mid - sg * 0.095) / 0.035) ** 2 + ((y - g.hilum_y) / 0.05) ** 2))

    # --- ribs: posterior arcs and fainter, oblique anterior ribs ---
    ur = np.abs(x - g.spine) / tw
    in_chest = _soft(1.0 - ur, 0.05) * _soft(y - 0.12, 0.03) * _soft(g.dia["L"] + 0.06 - y, 0.04)
    spacing = 0.60 + 0.04 * rj.standard_normal()
    phase = (np.clip(y - 0.12 + 0.16 * (ur - 0.55) ** 2 - 0.04 * ur, 0, None) / spacing) ** 0.85 * 9.0
    ribs = np.clip((np.cos(2 * np.pi * phase) - 0.2) * 1.25, 0, 1)
    phase_a = (y + 0.28 * ur) / 0.09
    ribs += 0.3 * np.clip(np.cos(2 * np.pi * phase_a), 0, 1) * np.clip(ur - 0.35, 0, 1)
    A += 0.055 * ribs * in_chest

    # --- thin structures: clavicles and vessels, drawn on one PIL layer ---
    thin, d_thin = cv.layer()
    cw = cv.width(0.024)
    for sg in (-1.0, 1.0):
        head = (g.mid + sg * 0.04 - 0.02 * rot, 0.195 - (0.03 if case.view == "AP" else 0.0))
        pts = _bezier(head, (0.5 + sg * 0.16, head[1] + 0.01), (0.5 + sg * (tw + 0.06), head[1] - 0.05))
        d_thin.line(cv.px(pts), fill=150, width=cw, joint="curve")
    rv = _rng(seed, index, "vessels")
    w1, w2 = cv.width(0.01), cv.width(0.005)
    for sg in (-1.0, 1.0):  # vessels fan out from each hilum, two tapering segments each
        ang = np.linspace(-1.3, 1.5, 12) + rv.normal(0, 0.12, 12)
        length = rv.uniform(0.12, 0.28, 12)[:, None]
        p0 = np.broadcast_to(np.array([g.mid + sg * 0.09, g.hilum_y]), (12, 2))
        d = np.stack([sg * np.cos(ang), np.sin(ang) * 1.2], axis=1)
        p1 = p0 + d * length * 0.45 + rv.normal(0, 0.015, (12, 2))
        p2 = p0 + d * length + rv.normal(0, 0.02, (12, 2))
        q0, q1, q2 = cv.px(p0), cv.px(p1), cv.px(p2)
        for k in range(12):
            d_thin.line([q0[k], q1[k]], fill=110, width=w1)
            d_thin.line([q1[k], q2[k]], fill=70, width=w2)

    # breast shadows and the gastric bubble
    if a.breast_shadows:
        for sg in (-1.0, 1.0):
            A += (
                0.07
                * _ellipse(x, y, 0.5 + sg * 0.2, g.dia["R"] + 0.03, 0.17, 0.13, 0.04)
                * _soft(y - g.dia["R"] + 0.02, 0.08)
            )
    if a.gastric_bubble:
        A -= 0.14 * _ellipse(x, y, g.mid + 0.15, g.dia["L"] + 0.08, 0.05, 0.03, 0.01)

    # --- findings ---
    f_lo, f_lines = _findings(
        case, lo, cv, g, seed, index, {"R": (lung_r, u_r, v_r), "L": (lung_l, u_l, v_l)}
    )
    # anatomical texture: low-frequency noise, stronger in the lungs (added before upsampling)
    rn = _rng(seed, index, "noise")
    tex = Image.fromarray(rn.standard_normal((size // 8, size // 8)).astype(_F))
    tex = np.asarray(tex.resize((lo.size, lo.size), Image.BICUBIC), dtype=_F)
    A = _up(A + f_lo + 0.025 * noise * tex * (0.3 + lungs), size)
    A += 0.2 * cv.blurred(thin, 1.1)  # clavicles and vessels lie inside the body
    if f_lines is not None:
        A += f_lines * _up(lungs, size)

    # --- devices (radiopaque) ---
    A += _devices(case, cv, g, seed, index)

    # --- exposure, noise ---
    e = case.exposure
    gain = 1.45 - 0.45 * e
    bright = -0.02 + 0.22 * max(-e, 0) - 0.22 * max(e, 0)
    lut = np.linspace(0, 1, 1024, dtype=_F) ** _F(1.0 + 0.35 * e)  # gamma through a lookup table
    img = lut[np.clip(A * _F(gain * 1023) + _F(bright * 1023), 0, 1023).astype(np.int16)]
    sigma = noise * (0.012 + 0.03 * max(-e, 0)) * 3.4641  # uniform noise with that std
    img += _F(sigma) * (rn.random((size, size), dtype=_F) - _F(0.5))
    img = _artifacts(case, img, seed, index)
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _up(a: np.ndarray, size: int) -> np.ndarray:
    if a.shape[0] == size:
        return a
    return np.array(Image.fromarray(a).resize((size, size), Image.BILINEAR), dtype=_F)


def _findings(case: Case, cv: _Canvas, hi: _Canvas, g: _Geometry, seed: int, index: int, lungs):
    """Findings at the smooth-anatomy resolution, plus thin lines (Kerley B) at full resolution."""
    x, y = cv.x, cv.y
    out = np.zeros_like(x)
    lines = None
    sides = {"right": ("R",), "left": ("L",), "bilateral": ("R", "L")}

    fluid_any = np.zeros_like(x)  # effusion fluid hides what lies behind it (basal atelectasis)
    f = case.findings["pleural_effusion"]
    if f.present:
        r = _rng(seed, index, "pleural_effusion")
        for s in sides[f.side]:
            lung, u, _ = lungs[s]
            hf = (0.02 + 0.30 * f.severity**1.2) * (g.dia[s] - g.apex)
            level = g.dia[s] + 0.07 - hf * (0.45 + 0.55 * np.clip(u, 0, 1) ** 2) * r.uniform(0.9, 1.1)
            fluid = _soft(y - level, 0.015 + 0.03 * f.severity)
            fluid_any = np.maximum(fluid_any, fluid * lung)
            out += (0.24 + 0.08 * f.severity) * fluid * lung

    f = case.findings["consolidation"]
    if f.present:
        r = _rng(seed, index, "consolidation")
        s = sides[f.side][0] if f.side != "bilateral" else ("R" if r.random() < 0.5 else "L")
        lung, u, v = lungs[s]
        sg = -1.0 if s == "R" else 1.0
        vc = {"upper": 0.28, "middle": 0.55, "lower": 0.78}[f.lobe or "lower"]
        uc = 0.55 if f.lobe != "middle" else 0.35
        cx = g.mid + sg * (0.05 + uc * (g.tw - 0.05))
        cy = g.apex + vc * (g.dia[s] - g.apex)
        rad = 0.06 + 0.10 * f.severity
        blob = _ellipse(x, y, cx, cy, rad * r.uniform(0.9, 1.3), rad * r.uniform(0.8, 1.1), 0.03)
        n = cv.size // 16
        mott = np.asarray(Image.fromarray(r.random((n, n)).astype(_F)).resize((cv.size,) * 2, Image.BICUBIC))
        dens = blob * np.clip(0.55 + 0.6 * mott, 0, 1) * lung
        if f.severity > 0.3:  # air bronchograms: dark branches inside the opacity
            br, d_br = cv.layer()
            for _ in range(3 + int(3 * f.severity)):
                p0 = np.array([cx, cy]) + r.normal(0, rad * 0.3, 2)
                ang = r.uniform(0, 2 * np.pi)
                p1 = p0 + rad * 0.8 * np.array([np.cos(ang), np.sin(ang)])
                d_br.line(cv.px(np.stack([p0, p1])), fill=255, width=cv.width(0.007))
            dens = dens * (1.0 - 0.7 * cv.blurred(br, 0.7))
        out += (0.12 + 0.26 * f.severity) * dens

    f = case.findings["atelectasis"]
    if f.present:
        r = _rng(seed, index, "atelectasis")
        layer, d = cv.layer()
        for s in sides[f.side]:
            sg = -1.0 if s == "R" else 1.0
            for k in range(1 + int(f.severity > 0.5)):
                yy = g.dia[s] - 0.05 - 0.04 * k + r.normal(0, 0.012)
                u0, u1 = r.uniform(0.2, 0.35), r.uniform(0.65, 0.85)
                p0 = (g.mid + sg * (0.05 + u0 * g.tw), yy + r.normal(0, 0.01))
                p1 = (g.mid + sg * (0.05 + u1 * g.tw), yy - 0.02 + r.normal(0, 0.01))
                d.line(cv.px(np.array([p0, p1])), fill=255, width=cv.width(0.008 + 0.018 * f.severity))
        lung_any = lungs["R"][0] + lungs["L"][0]
        out += (0.12 + 0.20 * f.severity) * cv.blurred(layer, 1.0) * lung_any * (1.0 - fluid_any)

    f = case.findings["edema"]
    if f.present:
        r = _rng(seed, index, "edema")
        lung_any = lungs["R"][0] + lungs["L"][0]
        haze = np.zeros_like(x)
        for sg in (-1.0, 1.0):
            sx = 0.08 + 0.06 * f.severity
            haze += np.exp(-(((x - g.mid - sg * 0.12) / sx) ** 2 + ((y - g.hilum_y - 0.03) / 0.14) ** 2))
        out += (0.05 + 0.16 * f.severity) * haze * lung_any + 0.04 * f.severity * lung_any
        if f.severity > 0.3:  # Kerley B lines at the lateral bases
            layer, d = hi.layer()
            for s in ("R", "L"):
                sg = -1.0 if s == "R" else 1.0
                for _ in range(int(3 + 10 * f.severity)):
                    yy = g.dia[s] - r.uniform(0.0, 0.15)
                    xe = g.mid + sg * (g.tw - r.uniform(0.005, 0.02))
                    ln = r.uniform(0.02, 0.04)
                    d.line(hi.px(np.array([(xe, yy), (xe - sg * ln, yy)])), fill=255, width=hi.width(0.004))
            lines = 0.12 * hi.blurred(layer, 0.5)
    return out, lines


def _devices(case: Case, cv: _Canvas, g: _Geometry, seed: int, index: int) -> np.ndarray:
    if not case.devices:
        return np.zeros_like(cv.x)
    layer, d = cv.layer()
    m = g.mid
    dev = case.devices
    if "endotracheal_tube" in dev:
        r = _rng(seed, index, "endotracheal_tube")
        tip = 0.26 + r.uniform(-0.03, 0.03)
        d.line(cv.px(np.array([(m - 0.004, -0.05), (m, tip)])), fill=90, width=cv.width(0.022))
        d.line(cv.px(np.array([(m + 0.006, -0.05), (m + 0.006, tip)])), fill=230, width=cv.width(0.005))
    if "nasogastric_tube" in dev:
        r = _rng(seed, index, "nasogastric_tube")
        end = (m + 0.16 + r.uniform(-0.03, 0.03), g.dia["L"] + 0.12)
        pts = np.concatenate(
            [
                _bezier((m + 0.01, -0.05), (m + 0.02, 0.4), (m + 0.03, g.dia["L"] + 0.02), 16),
                _bezier((m + 0.03, g.dia["L"] + 0.02), (m + 0.08, g.dia["L"] + 0.15), end, 12),
            ]
        )
        d.line(cv.px(pts), fill=200, width=cv.width(0.007), joint="curve")
    if "central_venous_catheter" in dev:
        r = _rng(seed, index, "central_venous_catheter")
        sg = -1.0 if dev["central_venous_catheter"] == "right" else 1.0
        p0 = (m + sg * 0.16, 0.08)
        tip = (m - 0.03 + r.uniform(-0.01, 0.01), 0.33 + r.uniform(-0.03, 0.04))
        d.line(cv.px(_bezier(p0, (m + sg * 0.06, 0.18), tip)), fill=215, width=cv.width(0.006), joint="curve")
    if "chest_tube" in dev:
        r = _rng(seed, index, "chest_tube")
        sg = -1.0 if dev["chest_tube"] == "right" else 1.0
        p0 = (m + sg * (g.tw + 0.08), g.dia["R"] - 0.02)
        p2 = (m + sg * r.uniform(0.12, 0.2), g.apex + r.uniform(0.05, 0.12))
        pts = _bezier(p0, (m + sg * (g.tw - 0.02), 0.35), p2)
        d.line(cv.px(pts), fill=120, width=cv.width(0.018), joint="curve")
        d.line(cv.px(pts), fill=240, width=cv.width(0.005), joint="curve")
    if "pacemaker" in dev:
        r = _rng(seed, index, "pacemaker")
        sg = -1.0 if dev["pacemaker"] == "right" else 1.0
        gx, gy = m + sg * r.uniform(0.2, 0.26), r.uniform(0.2, 0.25)
        box = cv.px(np.array([(gx - 0.04, gy - 0.03), (gx + 0.04, gy + 0.03)]))
        d.rounded_rectangle([box[0], box[1]], radius=cv.width(0.012), fill=255)
        for tip in ((m + 0.02, g.dia["L"] - 0.08), (m + 0.09, g.dia["L"] - 0.05)):
            pts = _bezier((gx, gy), (m - sg * 0.02, 0.2), tip)
            d.line(cv.px(pts), fill=235, width=cv.width(0.005), joint="curve")
    if "sternal_wires" in dev:
        r = _rng(seed, index, "sternal_wires")
        for k in range(int(r.integers(4, 7))):
            cy = 0.30 + k * 0.055 + r.normal(0, 0.005)
            box = cv.px(np.array([(m - 0.02, cy - 0.012), (m + 0.02, cy + 0.012)]))
            d.ellipse([box[0], box[1]], outline=255, width=cv.width(0.008))
    return 0.75 * cv.blurred(layer, 0.6)


def _artifacts(case: Case, img: np.ndarray, seed: int, index: int) -> np.ndarray:
    """Image-space artifacts: lead markers and collimation edges (not moved by the view)."""
    size = img.shape[0]
    r = _rng(seed, index, "markers")
    stamps = []
    if case.marker:
        stamps.append((_text_stamp(case.marker, int(size * 0.07)), r.integers(0, 2)))
    if case.portable_marker:
        stamps.append((_text_stamp("PORTABLE", int(size * 0.045)), 1 - (stamps[0][1] if stamps else 0)))
    for k, (st, corner) in enumerate(stamps):
        h, w = st.shape
        y0 = int(size * 0.03) + k * 0 + int(r.integers(0, max(1, size // 20)))
        x0 = int(size * 0.04) if corner == 0 else size - w - int(size * 0.04)
        sl = img[y0 : y0 + h, x0 : x0 + w]
        img[y0 : y0 + h, x0 : x0 + w] = np.maximum(sl, st[: sl.shape[0], : sl.shape[1]] * 0.97)
    if case.collimation:
        rc = _rng(seed, index, "collimation-edges")
        for side in rc.permutation(4)[: int(rc.integers(1, 4))]:
            w = int(size * rc.uniform(0.03, 0.1))
            if side == 0:
                img[:w] = 0.85
            elif side == 1:
                img[-w:] = 0.85
            elif side == 2:
                img[:, :w] = 0.85
            else:
                img[:, -w:] = 0.85
    return img
