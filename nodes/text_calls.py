"""Find the text attention call among all attention calls of one model evaluation.

The override adapters see every attention call that gets the sampler's
``transformer_options``. The architecture table says which call of a block carries text
(``Architecture.calls``); this module counts the calls of each block and gives the override
the text length of the call it should guide, or None for every other call.

Hooks, all ComfyUI public API and registered on the patched clone only:
- a ``DIFFUSION_MODEL`` wrapper starts each model evaluation with a fresh count and
  records the text length of ``context`` (``CONTEXT_LENGTH`` families);
- for models that set no block ids (SD3's MMDiT, AuraFlow, Wan on 0.3.75) or whose text
  stream is only known inside (``BLOCK_TEXT_STREAM``), a ``dit`` block replacement
  (``double_block`` / ``single_block``) per block marks the block and records the length of
  its ``txt`` argument, then runs the block (or a replacement another node registered for it).

Everything is stored in the per-evaluation ``transformer_options`` dict (the sampler builds
a new one for every model call), so nothing outlives a model evaluation.
"""

import functools
import inspect
import logging

import comfy.patcher_extension

from .architectures import BLOCK_TEXT_STREAM, CALL_ORDER, CONTEXT_LENGTH, DIT_BLOCK_PATCH, MODEL_BLOCK_IDS

log = logging.getLogger(__name__)

TEXT_LEN_KEY = "gag_text_len"
CALLS_KEY = "gag_text_calls"
BLOCK_KEY = "gag_block"
WRAPPER_KEY = "gag_text_length"


class BlockCalls:
    """The attention calls counted so far in the current block of one model evaluation.

    ``block`` is the (kind, index) marked by a block patch, for models without block ids."""

    def __init__(self, sequence=()):
        self.block = None
        self.sequence = sequence  # CALL_ORDER: (kind, number of blocks) in the order they run
        self.blocks_seen = False
        self._counted = None
        self._count = -1

    def next_ordinal(self, block) -> int:
        """0 for the first call made in ``block``, then 1, 2, …"""
        self.blocks_seen = True
        if block != self._counted:
            self._counted, self._count = block, -1
        self._count += 1
        return self._count

    def enter(self, block) -> None:
        self.block, self._counted, self._count = block, block, -1

    def block_at(self, position: int):
        """(kind, index) of the ``position``-th block in ``sequence``; None past the end."""
        for kind, count in self.sequence:
            if position < count:
                return kind, position
            position -= count
        return None


def install(model_patcher, architecture) -> None:
    """Register the hooks ``architecture`` needs on ``model_patcher`` (a clone)."""
    diffusion_model = model_patcher.model.diffusion_model
    if architecture.text_length == CONTEXT_LENGTH or architecture.block_ids != DIT_BLOCK_PATCH:
        sequence = tuple((kind, len(getattr(diffusion_model, attribute)))
                         for kind, attribute in architecture.block_lists)
        model_patcher.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY,
                                           _make_wrapper(architecture, sequence))
    if architecture.block_ids == DIT_BLOCK_PATCH or architecture.text_length == BLOCK_TEXT_STREAM:
        replacements = model_patcher.model_options["transformer_options"].get("patches_replace", {}).get("dit", {})
        # every block, selected or not: the first kind's blocks record the text length for later kinds
        marked = architecture.block_lists if architecture.block_ids == DIT_BLOCK_PATCH else architecture.block_lists[:1]
        for kind, attribute in marked:
            for index in range(len(getattr(diffusion_model, attribute))):
                key = (f"{kind}_block", index)
                model_patcher.set_model_patch_replace(
                    _make_block_patch(architecture, (kind, index), replacements.get(key)), "dit", *key)


def text_length(transformer_options: dict, architecture, selection) -> int | None:
    """The text length when this attention call is the text call of a selected block, else
    None. Must be called once per attention call (it counts the calls)."""
    calls = transformer_options.get(CALLS_KEY)
    if calls is None:
        return None
    if architecture.block_ids == CALL_ORDER:
        position, ordinal = divmod(calls.next_ordinal(CALL_ORDER), len(architecture.calls))
        block = calls.block_at(position)
        if block is None:  # more calls than the table says these blocks make
            return None
    else:
        if architecture.block_ids == DIT_BLOCK_PATCH:
            block = calls.block
        else:
            block = (transformer_options.get("block_type"), transformer_options.get("block_index"))
        if block is None or block[0] is None:  # outside the blocks: refiners, embedders
            return None
        ordinal = calls.next_ordinal(block)
    if ordinal != architecture.text_call or not selection.includes(*block):
        return None
    transformer_options[BLOCK_KEY] = block  # for observers: models without block ids have no block_type
    return transformer_options.get(TEXT_LEN_KEY)


@functools.cache
def _forward_signature(function) -> inspect.Signature:
    return inspect.signature(function)


def _arguments(executor, args, kwargs) -> dict:
    """The wrapped forward's arguments by name, those it takes through ``**kwargs`` included."""
    signature = _forward_signature(executor.original.__func__)
    arguments = dict(signature.bind(executor.class_obj, *args, **kwargs).arguments)
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            arguments.update(arguments.pop(parameter.name, {}))
    return arguments


def _make_wrapper(architecture, sequence: tuple):
    """``sequence``: (block kind, number of blocks) in the order the blocks run."""

    def record_text_length(executor, *args, **kwargs):
        """DIFFUSION_MODEL wrapper: a fresh call count, and the text length for the override."""
        arguments = _arguments(executor, args, kwargs)
        options = arguments.get("transformer_options")
        if not isinstance(options, dict):
            return executor(*args, **kwargs)
        calls = options[CALLS_KEY] = BlockCalls(sequence)
        context = arguments.get("context")
        if architecture.text_length == CONTEXT_LENGTH and context is not None:
            unknown = [name for name in architecture.text_unknown_with if arguments.get(name)]
            if unknown:
                _warn_once(architecture.name, f"with {unknown[0]} its text length is unknown")
            else:
                options[TEXT_LEN_KEY] = architecture.text_tokens(context.shape[1], executor.class_obj, arguments)
        out = executor(*args, **kwargs)
        if architecture.block_ids == MODEL_BLOCK_IDS and not calls.blocks_seen:
            _warn_once(architecture.name, "this ComfyUI version passes no block ids (block_type, block_index) to "
                                          "its attention, so its text attention cannot be told from its other "
                                          "attention calls; update ComfyUI")
        return out

    return record_text_length


def _make_block_patch(architecture, block, previous):
    def mark_block(args, extra):
        """``dit`` double_block replacement: mark the block, record the text stream length."""
        options = args["transformer_options"]
        calls = options.get(CALLS_KEY)
        if calls is None:
            calls = options[CALLS_KEY] = BlockCalls()
        if architecture.text_length == BLOCK_TEXT_STREAM and "txt" in args:  # single-stream blocks have none
            options[TEXT_LEN_KEY] = args["txt"].shape[1]
        calls.enter(block)
        try:
            return previous(args, extra) if previous is not None else extra["original_block"](args)
        finally:
            calls.enter(None)

    return mark_block


@functools.cache
def _warn_once(name: str, reason: str) -> None:
    log.warning("GAG: %s: %s; GAG leaves it unguided.", name, reason)
