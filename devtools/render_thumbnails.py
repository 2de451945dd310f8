"""Render the template-browser thumbnails of example_workflows/ (no model weights needed).

ComfyUI's template browser shows ``example_workflows/<name>.jpg`` next to ``<name>.json``.
Each thumbnail is a diagram read from the workflow itself: the model files, the node chain
from the loader to Save Image, the sampler settings and the GAG Settings values.

    .venv/bin/python devtools/render_thumbnails.py [WORKFLOW.json ...]   (default: all)
"""

import importlib
import json
import pathlib
import sys

from PIL import Image, ImageDraw, ImageFont

if __package__ in (None, ""):  # run as a script: make ``devtools`` importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from devtools.comfy_host import PACK_MODULE_NAME, REPO_ROOT, load_pack  # noqa: E402

WORKFLOW_DIR = REPO_ROOT / "example_workflows"
SIZE = 512
FONT_FILES = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "DejaVuSans.ttf")  # has Greek letters
BACKGROUND, BOX, TEXT, MUTED = "#1e1f22", "#34363b", "#eeeeee", "#a8acb3"
GAG_BOX, GAG_EDGE, ARROW = "#2f4a3a", "#6fcf97", "#8a8f98"
LOADERS = ("CheckpointLoaderSimple", "UNETLoader", "CLIPLoader", "DualCLIPLoader", "VAELoader")
LABELS = {"CheckpointLoaderSimple": "Load Checkpoint", "UNETLoader": "Load Diffusion Model",
          "ApplyGAG": "Apply GAG", "VAEDecode": "VAE Decode", "SaveImage": "Save Image",
          "KSamplerAdvanced": "KSampler (Advanced)", "CreateVideo": "Create Video", "SaveVideo": "Save Video"}
OUTPUTS = ("SaveImage", "SaveVideo")
SAMPLERS = {"KSampler": slice(2, 6), "KSamplerAdvanced": slice(3, 7)}
"""Sampler node -> where its widget values hold steps, cfg, sampler and scheduler."""
SETTINGS = (("λ", "lam"), ("ζ", "zeta"), ("τ", "tau"), ("α", "alpha"), ("mode", "mode"), ("window", "window"),
            ("blocks", "blocks"))
# the GAG Settings widget order, from the node's own definition (no ComfyUI needed to read it)
load_pack()
_DEFINITIONS = importlib.import_module(f"{PACK_MODULE_NAME}.nodes.definitions")
SETTINGS_ORDER = tuple(w.name for w in _DEFINITIONS.SETTINGS_WIDGETS)


def font(size):
    for path in FONT_FILES:
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    return ImageFont.load_default(size)


def fit(draw, text, width, face):
    """text, shortened with an ellipsis to fit in width pixels."""
    if draw.textlength(text, font=face) <= width:
        return text
    while text and draw.textlength(text + "…", font=face) > width:
        text = text[:-1]
    return text + "…"


def model_chain(workflow):
    """Node types from the loader to Save Image, following the MODEL input of each node."""
    nodes = {node["id"]: node for node in workflow["nodes"]}
    source = {(link[3], link[4]): link[1] for link in workflow["links"]}  # (target, slot) -> origin

    def upstream(node, input_name):
        slot = next((i for i, s in enumerate(node.get("inputs", [])) if s["name"] == input_name), None)
        return nodes.get(source.get((node["id"], slot)))

    save = next(node for node in nodes.values() if node["type"] in OUTPUTS)
    chain, node = [save], save
    while node is not None and node["type"] not in SAMPLERS:  # back to the (last) sampler
        node = upstream(node, next(name for name in ("video", "images", "samples")
                                   if any(slot["name"] == name for slot in node["inputs"])))
        chain.append(node)
    while node is not None and node["type"] not in LOADERS:
        node = upstream(node, "model")
        chain.append(node)
    return [n for n in reversed(chain) if n is not None]


def describe(workflow):
    """What the thumbnail shows, read from the workflow JSON."""
    by_type = {}
    for node in workflow["nodes"]:
        by_type.setdefault(node["type"], node)
    note = by_type.get("MarkdownNote") or by_type.get("Note")
    title = note["widgets_values"][0].splitlines()[0].lstrip("# ").strip() if note else "GAG example"
    files = [value for node in workflow["nodes"] if node["type"] in LOADERS
             for value in node["widgets_values"] if isinstance(value, str) and "." in value]
    files = [name.removesuffix(".safetensors") for name in files]
    kind = next(kind for kind in SAMPLERS if kind in by_type)
    steps, cfg, sampler, scheduler = by_type[kind]["widgets_values"][SAMPLERS[kind]]
    sampling = f"{steps} steps · CFG {cfg:g} · {sampler} / {scheduler}"
    if "FluxGuidance" in by_type:
        sampling += f" · FluxGuidance {by_type['FluxGuidance']['widgets_values'][0]:g}"
    settings = dict(zip(SETTINGS_ORDER, by_type["GAGSettings"]["widgets_values"]))
    settings["window"] = f"{settings['start_percent']:g}–{settings['end_percent']:g}"
    return title, files, [node["type"] for node in model_chain(workflow)], sampling, settings


def render(workflow) -> Image.Image:
    title, files, chain, sampling, settings = describe(workflow)
    image = Image.new("RGB", (SIZE, SIZE), BACKGROUND)
    draw = ImageDraw.Draw(image)
    big, normal, small = font(26), font(17), font(13)
    draw.text((24, 18), fit(draw, title, SIZE - 48, big), font=big, fill=TEXT)
    draw.text((24, 54), sampling, font=small, fill=MUTED)

    # the node chain, top to bottom, on the left
    left, width, top = 24, 236, 88
    step = min(62, (SIZE - top - 20) // len(chain))
    for i, node_type in enumerate(chain):
        y = top + i * step
        is_gag = node_type == "ApplyGAG"
        draw.rounded_rectangle((left, y, left + width, y + step - 18), radius=8,
                               fill=GAG_BOX if is_gag else BOX, outline=GAG_EDGE if is_gag else None, width=2)
        label = fit(draw, LABELS.get(node_type, node_type), width - 24, normal)
        draw.text((left + 12, y + (step - 18) / 2), label, font=normal, fill=TEXT, anchor="lm")
        if i:
            x = left + width / 2
            draw.line((x, y - 18, x, y - 2), fill=ARROW, width=3)
            draw.polygon(((x - 6, y - 8), (x + 6, y - 8), (x, y - 1)), fill=ARROW)
        if is_gag:
            gag_y = y + (step - 18) / 2
            draw.line((left + width + 2, gag_y, left + width + 22, gag_y), fill=GAG_EDGE, width=3)

    # GAG Settings on the right
    box = (left + width + 22, top, SIZE - 24, top + 262)
    draw.rounded_rectangle(box, radius=8, fill=GAG_BOX, outline=GAG_EDGE, width=2)
    draw.text((box[0] + 12, box[1] + 10), "GAG Settings", font=normal, fill=TEXT)
    for i, (label, key) in enumerate(SETTINGS):
        value = settings[key]
        if key == "tau" and not settings["cap"]:
            value = "off"
        text = f"{value:g}" if isinstance(value, float) else str(value)
        y = box[1] + 44 + i * 30
        draw.text((box[0] + 14, y), label, font=normal, fill=MUTED)
        draw.text((box[2] - 14, y), text, font=normal, fill=TEXT, anchor="ra")

    # model files under the settings
    y = box[3] + 16
    draw.text((box[0], y), "models", font=small, fill=MUTED)
    for i, name in enumerate(files[:5]):
        draw.text((box[0], y + 20 + i * 19), fit(draw, name, SIZE - 12 - box[0], small), font=small, fill=TEXT)
    return image


def main(paths):
    paths = [pathlib.Path(p) for p in paths] or sorted(WORKFLOW_DIR.glob("*.json"))
    for path in paths:
        image = render(json.loads(path.read_text(encoding="utf-8")))
        target = path.with_suffix(".jpg")
        image.save(target, "JPEG", quality=88, optimize=True)
        print(f"wrote {target.relative_to(REPO_ROOT) if target.is_relative_to(REPO_ROOT) else target}")


if __name__ == "__main__":
    main(sys.argv[1:])
