"""The one table of architecture facts: per model family, which attention calls carry text.

Every fact here was read from ComfyUI's model code (0.12.1; file names below). Three
layouts of text attention exist, each served by one generic adapter:

- UNet ``attn2`` (SD1.5, SD2, SDXL): its own replacement hook, keyed per transformer block.
- separate text cross-attention (image queries × text keys only), reached through
  ``optimized_attention_override``: every key of the text call is a text token.
- joint attention (MMDiT): text and image tokens in one sequence; only image queries ×
  text keys are guided. The text sits first or last, as one contiguous run of tokens.

An override sees every attention call that gets the sampler's ``transformer_options``:
self-attention, refiners, image-only and CLIP-image calls too. So the table lists, per
family, the attention calls one block makes, in order (``calls``); only the one named
``TEXT`` is guided, in the blocks ``blocks`` selects. Calls made outside the listed blocks
(Lumina's context and noise refiners, HunyuanVideo's token refiner) have no block and are
never guided. Shapes only confirm what the table says; they never pick a call.
"""

import dataclasses
import math
import pkgutil

UNET_CROSS_ATTENTION = "unet_cross_attention"
CROSS_ATTENTION = "cross_attention"
JOINT_ATTENTION = "joint_attention"

TEXT = "text"  # the guided call in ``Architecture.calls``

TEXT_FIRST = "first"
TEXT_LAST = "last"

# How the number of text tokens of a joint call is known, on every call.
CONTEXT_LENGTH = "context"
"""The text context the diffusion model is called with (``context.shape[1]``), recorded by a
``DIFFUSION_MODEL`` wrapper; ``pad_multiple`` names a model attribute when the model pads it
to a multiple of that many tokens."""
BLOCK_TEXT_STREAM = "block text stream"
"""The text stream a ``dit`` block replacement receives (``args["txt"].shape[1]``): for
models without a ``DIFFUSION_MODEL`` wrapper or that add tokens to the text inside (SD3's
register tokens)."""

# Where the block of a call is read from.
MODEL_BLOCK_IDS = "model"
"""The model sets ``block_type`` / ``block_index`` in ``transformer_options``."""
DIT_BLOCK_PATCH = "dit patch"
"""The model sets no block ids: a ``dit`` ``double_block`` replacement marks each block."""
CALL_ORDER = "call order"
"""The model sets no block ids and has no per-block hook, but runs its blocks one after the
other (kind by kind, in ``block_lists`` order), each making exactly the table's ``calls``,
and nothing else calls attention with the options: a call's block and role follow from its
position in the model evaluation."""


@dataclasses.dataclass(frozen=True)
class Architecture:
    """One model family.

    name: for messages. flavour: which adapter. model_class: dotted path of the diffusion
    model class (``model.diffusion_model``); ``exact_class`` refuses subclasses (variants
    that add calls this entry does not describe). ``requires``: (attribute, value) pairs
    the model must have (variants of one class). default_blocks: block kinds guided by
    ``blocks = auto``. block_lists: block kind → attribute holding those blocks.
    calls: the attention calls of one block, in order; ``TEXT`` is guided, the others are
    named for the reader. text_position / text_length / pad_multiple: the joint layout.
    extra_text: (argument, dim, count) for every other forward argument whose tokens join
    the text in each joint call (``count`` times its size along ``dim``). text_unknown_with:
    forward arguments that, when given, add text the table cannot count (left unguided).
    block_ids: where a call's block comes from.
    """

    name: str
    flavour: str
    model_class: str
    default_blocks: tuple
    block_lists: tuple = ()
    calls: tuple = (TEXT,)
    text_position: str = TEXT_FIRST
    text_length: str = CONTEXT_LENGTH
    pad_multiple: str | None = None
    extra_text: tuple = ()
    text_unknown_with: tuple = ()
    block_ids: str = MODEL_BLOCK_IDS
    exact_class: bool = False
    requires: tuple = ()

    @property
    def text_call(self) -> int:
        """Position of the text call among one block's attention calls."""
        return self.calls.index(TEXT)

    def text_tokens(self, context_tokens: int, diffusion_model, arguments: dict) -> int | None:
        """Text tokens the attention sees for a context of ``context_tokens`` tokens, given the
        forward's other ``arguments`` by name (None when an ``extra_text`` one is missing)."""
        multiple = getattr(diffusion_model, self.pad_multiple, None) if self.pad_multiple else None
        tokens = math.ceil(context_tokens / multiple) * multiple if multiple else context_tokens
        for name, dim, count in self.extra_text:
            if arguments.get(name) is None:
                return None
            tokens += count * arguments[name].shape[dim]
        return tokens


_DOUBLE = (("double", "double_blocks"),)
_DOUBLE_SINGLE = (("double", "double_blocks"), ("single", "single_blocks"))

ARCHITECTURES = (
    Architecture("UNet (SD1.5, SD2, SDXL and distilled SDXL)", UNET_CROSS_ATTENTION,
                 "comfy.ldm.modules.diffusionmodules.openaimodel.UNetModel", ("input", "output")),
    # flux/layers.py: DoubleStreamBlock cat((txt, img)); SingleStreamBlock runs on cat((txt, img))
    Architecture("FLUX.1 / FLUX.2", JOINT_ATTENTION, "comfy.ldm.flux.model.Flux", ("double", "single"),
                 _DOUBLE_SINGLE),
    Architecture("Chroma", JOINT_ATTENTION, "comfy.ldm.chroma.model.Chroma", ("double", "single"),
                 _DOUBLE_SINGLE),
    # qwen_image/model.py: Attention cat([txt, img], dim=2)
    Architecture("Qwen-Image", JOINT_ATTENTION, "comfy.ldm.qwen_image.model.QwenImageTransformer2DModel",
                 ("double",), (("double", "transformer_blocks"),)),
    # modules/diffusionmodules/mmdit.py: _block_mixing cat((context, x)) with the register tokens
    # before the text in the context stream; MMDiT-X blocks (x_block_self_attn, SD3.5 Medium)
    # then make an image-only call. MMDiT has no DIFFUSION_MODEL wrapper and sets no block ids.
    Architecture("SD3 / SD3.5 (MMDiT, MMDiT-X)", JOINT_ATTENTION,
                 "comfy.ldm.modules.diffusionmodules.mmdit.OpenAISignatureMMDITWrapper", ("double",),
                 (("double", "joint_blocks"),), calls=(TEXT, "image-only"), text_length=BLOCK_TEXT_STREAM,
                 block_ids=DIT_BLOCK_PATCH),
    # aura/mmdit.py: 8 register tokens, then the text, form the context stream; DoubleAttention
    # attends over cat([c, x]), the single layers over cat([c, x]) too. No block ids.
    Architecture("AuraFlow", JOINT_ATTENTION, "comfy.ldm.aura.mmdit.MMDiT", ("double", "single"),
                 (("double", "double_layers"), ("single", "single_layers")), text_length=BLOCK_TEXT_STREAM,
                 block_ids=DIT_BLOCK_PATCH),
    # lumina/model.py: NextDiT runs context_refiner (caption only) and noise_refiner (image only)
    # before its layers, then joint attention on cat((caption, image)); the caption is padded
    # with cap_pad_token to a multiple of pad_tokens_multiple (Z-Image; Lumina 2: no padding).
    # Only the layers get block ids, so the refiners' calls have none. With reference latents
    # (Z-Image omni) more captions join the text stream: left unguided.
    Architecture("Lumina 2 / Z-Image (NextDiT)", JOINT_ATTENTION, "comfy.ldm.lumina.model.NextDiT", ("double",),
                 (("double", "layers"),), pad_multiple="pad_tokens_multiple", text_unknown_with=("ref_latents",)),
    # hunyuan_video/model.py: double blocks are flux DoubleStreamBlock(flipped_img_txt=True), so
    # attention runs on cat((img, txt)); the single blocks on cat((img, txt)) too. The text
    # stream is the refined text (TokenRefiner, which runs before the blocks and gets no block
    # ids) with, in 1.5, byT5 glyph tokens and SigLIP vision tokens in front of it; its padding
    # mask is additive over the whole joint sequence. HunyuanImage 2.1 loads as this class.
    Architecture("HunyuanVideo / HunyuanVideo 1.5 / HunyuanImage 2.1", JOINT_ATTENTION,
                 "comfy.ldm.hunyuan_video.model.HunyuanVideo", ("double", "single"), _DOUBLE_SINGLE,
                 text_position=TEXT_LAST, text_length=BLOCK_TEXT_STREAM),
    # cosmos/predict2.py: each Block runs self_attn, then cross_attn on the context (T5, or
    # Anima's LLM-adapted text, which its model_base computes before the model is called), and
    # MiniTrainDIT._forward loops over its blocks with neither block ids nor a block hook.
    Architecture("Cosmos Predict2 / Anima (MiniTrainDIT)", CROSS_ATTENTION, "comfy.ldm.cosmos.predict2.MiniTrainDIT",
                 ("double",), (("double", "blocks"),), calls=("self", TEXT), block_ids=CALL_ORDER),
    # kandinsky5/model.py: the text_transformer_blocks (self-attention over the text) run before
    # any block id is set; each visual block then runs self_attention, then cross_attention on
    # the text (one call each, chunked or not).
    Architecture("Kandinsky 5", CROSS_ATTENTION, "comfy.ldm.kandinsky5.model.Kandinsky5", ("double",),
                 (("double", "visual_transformer_blocks"),), calls=("self", TEXT)),
    # lightricks/model.py: each BasicTransformerBlock runs attn1 (self) then attn2 on the projected
    # caption with its additive padding mask; no block ids, but dit double_block replacements
    # whose txt is exactly attn2's keys. LTX-2 (LTXAVModel, a subclass) adds audio, audio-video
    # and video-audio calls whose order depends on run flags: not covered yet.
    Architecture("LTXV", CROSS_ATTENTION, "comfy.ldm.lightricks.model.LTXVModel", ("double",),
                 (("double", "transformer_blocks"),), calls=("self", TEXT), text_length=BLOCK_TEXT_STREAM,
                 block_ids=DIT_BLOCK_PATCH, exact_class=True),
    # hidream/model.py: image tokens first, then the text: T5 and the last chosen Llama layer
    # (the "initial" text, carried from block to block), then this block's own Llama layer, in
    # double blocks (cat([query_i, query_t])) and single blocks (cat([img, initial, llama]))
    # alike: every call holds T5 + 2 × the Llama tokens. No block ids, no block hook; one
    # attention call per block, double blocks first.
    Architecture("HiDream", JOINT_ATTENTION, "comfy.ldm.hidream.model.HiDreamImageTransformer2DModel",
                 ("double", "single"), (("double", "double_stream_blocks"), ("single", "single_stream_blocks")),
                 text_position=TEXT_LAST, extra_text=(("encoder_hidden_states_llama3", -2, 2),),
                 block_ids=CALL_ORDER),
    # wan/model.py: WanAttentionBlock runs self_attn, then cross_attn on the T5 context; the
    # 2.1 image-to-video cross-attention first attends to the CLIP-image tokens (k_img/v_img).
    # Variants (VACE, camera, S2V, HuMo, Animate) add calls and are not covered yet. Block ids
    # are set by the model in 0.12.1, not in 0.3.75: the dit patch marks blocks on both hosts.
    Architecture("Wan 2.1 / 2.2", CROSS_ATTENTION, "comfy.ldm.wan.model.WanModel", ("double",),
                 (("double", "blocks"),), calls=("self", TEXT), block_ids=DIT_BLOCK_PATCH, exact_class=True,
                 requires=(("model_type", "t2v"),)),
    Architecture("Wan 2.1 image-to-video", CROSS_ATTENTION, "comfy.ldm.wan.model.WanModel", ("double",),
                 (("double", "blocks"),), calls=("self", "clip-image", TEXT), block_ids=DIT_BLOCK_PATCH,
                 exact_class=True, requires=(("model_type", "i2v"),)),
)


_NO_OPTIONS = ("its attention calls get no transformer_options, so no ComfyUI hook can reach its text "
               "attention without forking the model's code")
REFUSED = (
    # pixart/blocks.py MultiHeadCrossAttention / AttentionKVCompress: optimized_attention(...) without options
    ("PixArt", "comfy.ldm.pixart.pixartms.PixArtMS", _NO_OPTIONS),
    # hydit/attn_layers.py CrossAttention / Attention: the same
    ("HunyuanDiT", "comfy.ldm.hydit.models.HunYuanDiT", _NO_OPTIONS),
)
"""Families Apply GAG refuses with a reason: (name, model class, why)."""


class UnsupportedModelError(ValueError):
    """Raised by Apply GAG for a model it cannot patch (never a silent no-op)."""


def load_class(dotted: str):
    """The class at the dotted path ``dotted``, or None when this ComfyUI lacks it."""
    try:
        return pkgutil.resolve_name(dotted)
    except (ImportError, AttributeError):
        return None


def _matches(architecture: Architecture, diffusion_model) -> bool:
    cls = load_class(architecture.model_class)
    if cls is None:
        return False
    is_member = type(diffusion_model) is cls if architecture.exact_class else isinstance(diffusion_model, cls)
    return is_member and all(getattr(diffusion_model, attribute, None) == value
                             for attribute, value in architecture.requires)


def detect(diffusion_model) -> Architecture:
    """The table entry that describes the diffusion model."""
    for architecture in ARCHITECTURES:
        if _matches(architecture, diffusion_model):
            return architecture
    for name, model_class, reason in REFUSED:
        cls = load_class(model_class)
        if cls is not None and isinstance(diffusion_model, cls):
            raise UnsupportedModelError(f"Apply GAG cannot guide {name} ({model_class}): {reason}.")
    supported = "; ".join(a.name for a in ARCHITECTURES)
    raise UnsupportedModelError(
        f"Apply GAG does not support {type(diffusion_model).__module__}.{type(diffusion_model).__name__}: "
        f"it needs text cross-attention or joint text-image attention reachable through ComfyUI's hooks. "
        f"Supported: {supported}.")
