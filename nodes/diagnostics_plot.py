"""Render a GAGTrace as a picture (Pillow only, headless) for the GAG Diagnostics Plot node.

Four panels, one per statistic, each with a title that says what it measures, a y axis with
ticks and its unit, and the sampling steps on the x axis. Step i owns the band [i, i + 1) of
the x axis and its points sit at the band's centre, so the grey shading of steps outside the
start/end window covers exactly those steps, whatever the step count. Text is sized to stay
readable when the front end shows the 1024 × 768 image in a node's preview (about a third of
its size).

Greek letters and ‖·‖ need a font that has them. Pillow's own font has none, so the common
system fonts (DejaVu, Liberation, Arial, Noto) are tried, then matplotlib's copy of DejaVu if
matplotlib is installed; without any of them the labels fall back to ASCII.
"""

import functools
import importlib.util
import math
import pathlib

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 1024, 768
FONT_FILES = ("DejaVuSans.ttf", "LiberationSans-Regular.ttf", "Arial.ttf", "arial.ttf", "NotoSans-Regular.ttf",
              "FreeSans.ttf")
GREEK_SAMPLE = "Δτ‖∥"
TITLE_SIZE, PANEL_TITLE_SIZE, TICK_SIZE, KEY_SIZE, LEGEND_SIZE = 40, 32, 28, 25, 30
HEADER, FOOTER = 100, 46  # heights of the title + key block and of the legend row
COLOURS = {"input": (31, 119, 180), "middle": (148, 103, 189), "output": (255, 127, 14),
           "double": (44, 160, 44), "single": (214, 39, 40)}
GRID, SHADE, AXIS, MUTED = (225, 225, 225), (214, 214, 214), (40, 40, 40), (90, 90, 90)


class Panel:
    """One statistic: the record key, its title and y-axis title (Greek and ASCII forms), how
    its values are shown (``percent``: fractions as %) and its fixed y range (None: from data)."""

    def __init__(self, metric, title, ascii_title, axis, ascii_axis, *, percent=False, y_range=None):
        self.metric, self.percent, self.y_range = metric, percent, y_range
        self.titles = {True: (title, axis), False: (ascii_title, ascii_axis)}


PANELS = (
    Panel("delta_norm", "mean ‖Δ‖, Δ = S − D", "mean |delta|, delta = S - D",
          "output units", "output units"),
    Panel("parallel_share", "Δ along S: ‖Δ∥‖ / ‖Δ‖", "share of delta along S",
          "% of ‖Δ‖", "% of |delta|", percent=True, y_range=(0.0, 1.0)),
    Panel("cosine", "cos(Δ, S): Δ's direction", "cos(delta, S)",
          "cosine", "cosine", y_range=(-1.0, 1.0)),
    Panel("capped_fraction", "tokens at the τ cap", "tokens at the tau cap",
          "% of tokens", "% of tokens", percent=True, y_range=(0.0, 1.0)),
)
KEY = {True: "D, S: normal and sparse (α-entmax) attention · grey: steps outside the window",
       False: "D, S: normal and sparse (entmax) attention; grey: steps outside the window"}


def render(trace_data: dict) -> Image.Image:
    """``trace_data``: {"steps": n, "records": [{step, block, active, <metrics>}...]} (GAGTrace.to_json)."""
    greek = fonts_have_greek()
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    records = trace_data["records"]
    steps = max([trace_data.get("steps", 0)] + [r["step"] + 1 for r in records]) or 1
    kinds = sorted({r["block"] for r in records}, key=lambda kind: list(COLOURS).index(kind) if kind in COLOURS else 99)
    inactive = sorted({r["step"] for r in records} - {r["step"] for r in records if r["active"]})
    draw.text((24, 8), f"GAG diagnostics: {steps} sampling step{'s' * (steps != 1)}", fill=AXIS,
              font=font(TITLE_SIZE))
    draw.text((24, 60), KEY[greek], fill=MUTED, font=font(KEY_SIZE))
    for panel, box in zip(PANELS, panel_boxes()):
        _panel(draw, image, box, panel, greek, records, kinds, steps, inactive)
    _legend(draw, kinds, HEIGHT - FOOTER // 2 - 4)
    return image


def panel_boxes() -> list:
    """(left, top, right, bottom) of each panel's plot area, in PANELS order (2 × 2)."""
    cell_w, cell_h = WIDTH // 2, (HEIGHT - HEADER - FOOTER) // 2
    return [((i % 2) * cell_w + 132, HEADER + (i // 2) * cell_h + 44, (i % 2 + 1) * cell_w - 22,
             HEADER + (i // 2 + 1) * cell_h - 68) for i in range(len(PANELS))]


def step_band(box, steps: int, step: int) -> tuple:
    """The x range [start, end) of ``step`` in a panel: step i owns the i-th of ``steps`` bands."""
    left, _, right, _ = box
    width = (right - left) / steps
    return left + step * width, left + (step + 1) * width


def _panel(draw, image, box, panel, greek, records, kinds, steps, inactive):
    left, top, right, bottom = box
    title, axis_title = panel.titles[greek]
    values = [r[panel.metric] for r in records if r.get(panel.metric) is not None]
    low, high = panel.y_range or (0.0, max(values + [0.0]) * 1.1 or 1.0)
    ticks = _ticks(low, high, target=3 if panel.y_range == (-1.0, 1.0) else 5)
    low, high = min(low, ticks[0]), max(high, ticks[-1])

    def x_of(step):  # centre of step's band
        return sum(step_band(box, steps, step)) / 2

    def y_of(value):  # values outside the panel's range (none expected) stay on its edge
        return bottom - (bottom - top) * (min(max(value, low), high) - low) / (high - low)

    for step in inactive:
        start, end = step_band(box, steps, step)
        draw.rectangle((start, top, end, bottom), fill=SHADE)
    for tick in ticks:
        y = y_of(tick)
        draw.line((left, y, right, y), fill=GRID)
        draw.line((left - 6, y, left, y), fill=AXIS, width=2)
        label = f"{tick * 100:.0f}" if panel.percent else _number(tick)
        draw.text((left - 10, y), label, fill=AXIS, font=font(TICK_SIZE), anchor="rm")
    for step in _step_ticks(steps):
        x = x_of(step)
        draw.line((x, bottom, x, bottom + 6), fill=AXIS, width=2)
        draw.text((x, bottom + 8), str(step), fill=AXIS, font=font(TICK_SIZE), anchor="mt")
    draw.rectangle(box, outline=AXIS, width=2)
    draw.text((left, top - 8), title, fill=AXIS, font=font(PANEL_TITLE_SIZE), anchor="ls")
    draw.text(((left + right) / 2, bottom + 38), "sampling step", fill=MUTED, font=font(TICK_SIZE), anchor="mt")
    _vertical_text(image, (left - 112, (top + bottom) / 2), axis_title)
    for kind in kinds:
        points = [(x_of(r["step"]), y_of(r[panel.metric])) for r in records
                  if r["block"] == kind and r.get(panel.metric) is not None]
        colour = COLOURS.get(kind, (0, 0, 0))
        if len(points) > 1:
            draw.line(points, fill=colour, width=3)
        for x, y in points:
            draw.ellipse((x - 5, y - 5, x + 5, y + 5), fill=colour)


def _legend(draw, kinds, y):
    label = font(LEGEND_SIZE)
    draw.text((24, y), "blocks:", fill=AXIS, font=label, anchor="lm")
    x = 48 + int(draw.textlength("blocks:", font=label))
    for kind in kinds:
        colour = COLOURS.get(kind, (0, 0, 0))
        draw.line((x, y, x + 34, y), fill=colour, width=4)
        draw.ellipse((x + 12, y - 5, x + 22, y + 5), fill=colour)
        draw.text((x + 42, y), kind, fill=AXIS, font=label, anchor="lm")
        x += 60 + int(draw.textlength(kind, font=label))


def _vertical_text(image, centre, text):
    """Paste ``text`` rotated by 90° (reading upwards) centred on ``centre``."""
    size = font(TICK_SIZE)
    width = int(ImageDraw.Draw(image).textlength(text, font=size)) + 4
    label = Image.new("RGB", (width, TICK_SIZE + 8), "white")
    ImageDraw.Draw(label).text((2, 2), text, fill=MUTED, font=size)
    label = label.rotate(90, expand=True)
    image.paste(label, (int(centre[0] - label.width / 2), int(centre[1] - label.height / 2)))


def _ticks(low: float, high: float, target: int = 5) -> list:
    """Round tick values (1, 2, 2.5 or 5 × 10^k apart) covering [low, high]."""
    raw = (high - low) / (target - 1)
    power = 10 ** math.floor(math.log10(raw))
    spacing = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / spacing + 1e-9) * spacing
    count = math.ceil((high - first) / spacing - 1e-9)
    return [first + i * spacing for i in range(count + 1)]


def _step_ticks(steps: int) -> range:
    """Every step on short runs, about eight evenly spaced ones on long runs."""
    return range(0, steps, max(1, math.ceil(steps / 8)))


def _number(value: float) -> str:
    return "0" if value == 0 else f"{value:.3g}"


@functools.lru_cache(maxsize=None)
def font(size: int):
    """The first font found that draws Greek letters, else Pillow's own (ASCII) font."""
    for path in _font_files():
        try:
            candidate = ImageFont.truetype(path, size)
        except OSError:
            continue
        if _draws(candidate, GREEK_SAMPLE):
            return candidate
    return ImageFont.load_default(size)


def fonts_have_greek() -> bool:
    return _draws(font(TICK_SIZE), GREEK_SAMPLE)


def _font_files():
    yield from FONT_FILES  # Pillow looks bare names up in the system's font folders
    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.origin:
        yield str(pathlib.Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf")


def _draws(candidate, text: str) -> bool:
    """Whether the font has glyphs for every character (a missing one draws the same box as
    a private-use code point)."""
    def bitmap(character):
        canvas = Image.new("L", (2 * int(candidate.size), 2 * int(candidate.size)))
        ImageDraw.Draw(canvas).text((0, 0), character, font=candidate, fill=255)
        return canvas.tobytes()

    missing = bitmap("\ue000")
    return all(bitmap(character) != missing for character in text)


def to_image_tensor(image: Image.Image) -> torch.Tensor:
    """ComfyUI IMAGE: (1, H, W, 3) float32 in [0, 1]."""
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).unsqueeze(0)
