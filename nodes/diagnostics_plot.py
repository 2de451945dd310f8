"""Render a GAGTrace as a picture (Pillow only, headless) for the GAG Diagnostics Plot node."""

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

PANELS = (  # ASCII labels: Pillow's built-in font has no Greek or math glyphs
    ("delta_norm", "mean |delta| = |sparse - dense|"),
    ("parallel_share", "parallel share |delta_par| / |delta|"),
    ("cosine", "cos(delta, sparse)"),
    ("capped_fraction", "fraction of tokens at the tau cap"),
)
COLOURS = {"input": (31, 119, 180), "middle": (148, 103, 189), "output": (255, 127, 14),
           "double": (44, 160, 44), "single": (214, 39, 40)}
WIDTH, HEIGHT, MARGIN = 1024, 768, 56


def render(trace_data: dict) -> Image.Image:
    """``trace_data``: {"steps": n, "records": [{step, block, active, <metrics>}...]}."""
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    records = trace_data["records"]
    steps = max([trace_data.get("steps", 0)] + [r["step"] + 1 for r in records]) or 1
    kinds = sorted({r["block"] for r in records})
    inactive = sorted({r["step"] for r in records} - {r["step"] for r in records if r["active"]})
    draw.text((MARGIN, 12), f"GAG diagnostics: {steps} steps, blocks {', '.join(kinds) or 'none'}"
              + ("; grey = outside the step window" if inactive else ""), fill="black", font=font)
    panel_w, panel_h = (WIDTH - 3 * MARGIN) // 2, (HEIGHT - 3 * MARGIN) // 2
    for index, (metric, title) in enumerate(PANELS):
        left = MARGIN + (index % 2) * (panel_w + MARGIN)
        top = MARGIN + (index // 2) * (panel_h + MARGIN)
        _panel(draw, font, (left, top, left + panel_w, top + panel_h), title, metric, records, kinds, steps, inactive)
    for i, kind in enumerate(kinds):
        x = MARGIN + i * 110
        draw.line((x, HEIGHT - 18, x + 24, HEIGHT - 18), fill=COLOURS.get(kind, (0, 0, 0)), width=3)
        draw.text((x + 30, HEIGHT - 24), kind, fill="black", font=font)
    return image


def _panel(draw, font, box, title, metric, records, kinds, steps, inactive):
    left, top, right, bottom = box
    values = [r[metric] for r in records if r[metric] is not None]
    low, high = min(values + [0.0]), max(values + [1e-12])
    if metric in ("parallel_share", "capped_fraction"):
        low, high = 0.0, max(high, 1.0)
    elif metric == "cosine":
        low, high = -1.0, 1.0

    def x_of(step):
        return left + (right - left) * (step / max(steps - 1, 1))

    def y_of(value):
        return bottom - (bottom - top) * ((value - low) / (high - low or 1.0))

    for step in inactive:
        half = (right - left) / max(steps - 1, 1) / 2
        draw.rectangle((max(left, x_of(step) - half), top, min(right, x_of(step) + half), bottom), fill=(230, 230, 230))
    draw.rectangle(box, outline="black")
    draw.text((left, top - 16), title, fill="black", font=font)
    draw.text((left - 50, top - 4), f"{high:.3g}", fill="black", font=font)
    draw.text((left - 50, bottom - 8), f"{low:.3g}", fill="black", font=font)
    draw.text((left, bottom + 4), "step 0", fill="black", font=font)
    draw.text((right - 40, bottom + 4), f"{steps - 1}", fill="black", font=font)
    for kind in kinds:
        points = [(x_of(r["step"]), y_of(r[metric])) for r in records
                  if r["block"] == kind and r[metric] is not None]
        colour = COLOURS.get(kind, (0, 0, 0))
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)


def to_image_tensor(image: Image.Image) -> torch.Tensor:
    """ComfyUI IMAGE: (1, H, W, 3) float32 in [0, 1]."""
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).unsqueeze(0)
