"""Printable device label: id, site, profile and a QR code of the id, as SVG or PNG.

Sized for 62 mm continuous label tape at 300 dpi (about 732 × 350 px); the QR code
carries `boucle://device/<id>?site=<site>` so a phone scan gives the id back.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from io import BytesIO
from typing import Any

import segno

WIDTH, HEIGHT = 732, 350


@dataclass(frozen=True)
class LabelText:
    device_id: str
    site_id: str
    site_name: str
    profile: str
    mac: str


def qr_payload(text: LabelText) -> str:
    return f"boucle://device/{text.device_id}?site={text.site_id}"


def _qr(text: LabelText) -> segno.QRCode:
    # A full QR code (not Micro QR): every phone camera app reads those.
    return segno.make_qr(qr_payload(text), error="m")


def _lines(text: LabelText) -> list[tuple[str, int, bool]]:
    """(text, font size px, bold) lines of the label."""
    return [
        (text.device_id, 40, True),
        (text.site_name[:34], 26, False),
        (f"site {text.site_id}", 22, False),
        (f"{text.profile} · {text.mac}", 22, False),
    ]


def render_svg(text: LabelText) -> bytes:
    qr = _qr(text)
    size = HEIGHT - 40
    scale = size / qr.symbol_size(scale=1, border=2)[0]
    qr_svg = qr.svg_inline(scale=scale, border=2, omitsize=False)
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
              f'viewBox="0 0 {WIDTH} {HEIGHT}">'),
             f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>',
             f'<g transform="translate(20 20)">{qr_svg}</g>']
    y = 70
    for line, px, bold in _lines(text):
        weight = ' font-weight="bold"' if bold else ""
        parts.append(f'<text x="{size + 40}" y="{y}" font-family="DejaVu Sans, Arial, sans-serif" '
                     f'font-size="{px}"{weight}>{escape(line)}</text>')
        y += px + 30
    parts.append("</svg>")
    return "\n".join(parts).encode("utf-8")


def render_png(text: LabelText) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("L", (WIDTH, HEIGHT), 255)
    draw = ImageDraw.Draw(image)
    qr = _qr(text)
    matrix = qr.matrix
    cells = len(matrix) + 4  # 2-module quiet zone on each side
    cell = (HEIGHT - 40) // cells
    left = top = 20 + 2 * cell
    for r, row in enumerate(matrix):
        for c, dark in enumerate(row):
            if dark:
                draw.rectangle([left + c * cell, top + r * cell,
                                left + (c + 1) * cell - 1, top + (r + 1) * cell - 1], fill=0)
    x, y = 20 + cells * cell + 20, 40
    for line, px, bold in _lines(text):
        font = _font(px, bold)
        draw.text((x, y), line, fill=0, font=font)
        y += px + 30
    out = BytesIO()
    image.save(out, format="PNG", dpi=(300, 300))
    return out.getvalue()


def _font(px: int, bold: bool) -> Any:
    """DejaVu Sans when installed (accented site names); Pillow's bundled font otherwise."""
    from PIL import ImageFont

    try:
        return ImageFont.truetype("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf", px)
    except OSError:
        return ImageFont.load_default(size=px)


def render(text: LabelText, fmt: str) -> bytes:
    """The label as `svg` or `png` bytes."""
    if fmt == "svg":
        return render_svg(text)
    if fmt == "png":
        return render_png(text)
    raise ValueError(f"label format {fmt!r}: use png or svg")
