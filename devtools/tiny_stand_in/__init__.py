"""Test-only custom node pack: stand-ins for loaders whose real models cannot run in a test.

Loaded by the end-to-end tests and ``scripts/run-comfyui.sh --demo`` through their own
temporary ``custom_nodes/`` folder, never by users. ``GAGTinyCheckpointLoader`` is a weight-free
stand-in for ``CheckpointLoaderSimple``, with its outputs (MODEL, CLIP, VAE):

- MODEL: the tiny random-weight SDXL-class UNet of ``devtools/tiny_models.py`` (a real
  ``comfy.model_base.SDXL`` in a ``ModelPatcher``; seeded, so every load is identical);
- CLIP: answers what ``CLIPTextEncode`` calls (``tokenize``, ``encode_from_tokens_scheduled``)
  with conditioning of that model's shapes, drawn from a seed derived from the text;
- VAE: ``decode`` turns a latent (B, 4, h, w) into a (B, 8h, 8w, 3) image in [0, 1].

``GAGTinyCLIPLoader`` takes ``CLIPLoader``'s inputs and loads the text encoder files of
devtools/stand_in_files.py, where CLIPLoader would build the real encoder at its full size
whatever the file holds: type ``flux2`` loads the tiny FLUX.2 [klein] file into ComfyUI's own
Klein text encoder classes at that tiny width; type ``wan`` reads the conditioning width from
its file and gives a ``TinyTextEncoder`` of that width (32 tokens).

``POST /gag_stand_in/validate`` with ``{"prompt": ...}`` answers what the server's own
validation (``execution.validate_prompt``, as ``/prompt`` runs it) says of an API-format
prompt, without queueing it: for workflows whose real loaders cannot run in a test.
"""

import hashlib
import importlib.util
import pathlib
import sys
import uuid

import torch

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
_TINY_MODELS = "gag_stand_in_tiny_models"


def _tiny_models():
    """``devtools/tiny_models.py``, imported by path (inside the server this repository is
    not on ``sys.path``: its ``nodes`` package would shadow ComfyUI's)."""
    if _TINY_MODELS not in sys.modules:
        spec = importlib.util.spec_from_file_location(_TINY_MODELS, REPO_ROOT / "devtools" / "tiny_models.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[_TINY_MODELS] = module
        spec.loader.exec_module(module)
    return sys.modules[_TINY_MODELS]


def _text_seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little") >> 1


class TinyTextEncoder:
    """CLIP stand-in: text → (1, tokens, width) embedding plus a pooled vector, deterministic per text."""

    def __init__(self, cond_shape, pooled_shape):
        self.cond_shape = tuple(cond_shape)
        self.pooled_shape = tuple(pooled_shape)

    def tokenize(self, text, return_word_ids=False, **kwargs):
        return {"text": text}

    def encode_from_tokens_scheduled(self, tokens, unprojected=False, add_dict=None, show_pbar=True):
        generator = torch.Generator().manual_seed(_text_seed(tokens["text"]))
        cond = torch.randn(self.cond_shape, generator=generator)
        pooled = torch.randn(self.pooled_shape, generator=generator)
        return [[cond, {"pooled_output": pooled, **(add_dict or {})}]]


class TinyImageDecoder:
    """VAE stand-in: the first three latent channels, squashed to [0, 1] and upscaled 8×."""

    downscale_ratio = 8

    def decode(self, samples):
        rgb = torch.sigmoid(samples[:, :3].float())
        rgb = torch.nn.functional.interpolate(rgb, scale_factor=self.downscale_ratio, mode="nearest")
        return rgb.movedim(1, -1).contiguous()


class GAGTinyCheckpointLoader:
    """Tiny random-weight SDXL-class MODEL, with CLIP and VAE stand-ins; no files needed."""

    CATEGORY = "_for_testing"
    DESCRIPTION = "Test-only stand-in for Load Checkpoint (ComfyUI-GAG's end-to-end tests and demo)."
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    def load(self):
        tiny = _tiny_models().sdxl()
        cond, extras = tiny.positive[0]
        clip = TinyTextEncoder(cond.shape, extras["pooled_output"].shape)
        return tiny.patcher, clip, TinyImageDecoder()


class GAGTinyCLIPLoader:
    """CLIPLoader's inputs; loads a stand-in text encoder file (see the module docstring)."""

    CATEGORY = "_for_testing"
    DESCRIPTION = "Test-only stand-in for Load CLIP on tiny text encoder files (ComfyUI-GAG's tests)."
    RETURN_TYPES = ("CLIP",)
    FUNCTION = "load"
    WAN_TOKENS = 32

    @classmethod
    def INPUT_TYPES(cls):
        import folder_paths

        return {"required": {"clip_name": (folder_paths.get_filename_list("text_encoders"),),
                             "type": (["flux2", "wan"],)},
                "optional": {"device": (["default", "cpu"],)}}

    def load(self, clip_name, type, device="default"):
        import comfy.utils
        import folder_paths

        state = comfy.utils.load_torch_file(folder_paths.get_full_path_or_raise("text_encoders", clip_name))
        if type == "wan":
            (width,) = (int(tensor) for tensor in state.values())
            return (TinyTextEncoder((1, self.WAN_TOKENS, width), (1, width)),)
        return (_tiny_models().klein_text_encoder(state),)


VALIDATE_ROUTE = "/gag_stand_in/validate"


def _add_validate_route() -> None:
    from aiohttp import web
    import execution
    from server import PromptServer

    @PromptServer.instance.routes.post(VALIDATE_ROUTE)
    async def validate(request):
        prompt = (await request.json())["prompt"]
        valid, error, outputs, node_errors = await execution.validate_prompt(uuid.uuid4().hex, prompt, None)
        return web.json_response({"valid": valid, "error": error, "outputs": outputs, "node_errors": node_errors})


_add_validate_route()

NODE_CLASS_MAPPINGS = {"GAGTinyCheckpointLoader": GAGTinyCheckpointLoader, "GAGTinyCLIPLoader": GAGTinyCLIPLoader}
NODE_DISPLAY_NAME_MAPPINGS = {"GAGTinyCheckpointLoader": "GAG Tiny Checkpoint (test only)",
                              "GAGTinyCLIPLoader": "GAG Tiny Text Encoder (test only)"}
