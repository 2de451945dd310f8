"""The ``optimized_attention_override`` both DiT adapters install (cross and joint attention).

It guides only the call the architecture table names as text attention in a selected
block (``text_calls``), when the call's shapes confirm the table, inside the step window
and on the rows the gate admits. Every other call runs the base attention: the override
another node installed before (chained, never replaced), else ComfyUI's own backend.
"""

import dataclasses
import functools
import logging

from . import text_calls
from .gate import split_heads

log = logging.getLogger(__name__)

OVERRIDE_KEY = "optimized_attention_override"


@dataclasses.dataclass
class AttentionCall:
    """One attention call as ComfyUI's backends receive it.

    q, k, v: (B, N, H·d) (or (B, N, H, d)), or (B, H, N, d) with ``skip_reshape``; the output layout is
    (B, N, H·d), or (B, H, N, d) with ``skip_output_reshape``. ``previous``: the override
    installed before GAG's, which then makes the base output (None: ComfyUI's backend)."""

    func: object
    q: object
    k: object
    v: object
    heads: int
    mask: object
    kwargs: dict
    text_len: int
    previous: object = dataclasses.field(repr=False, default=None)

    @property
    def chained(self) -> bool:
        """Whether another override makes the base output."""
        return self.previous is not None

    @functools.cached_property
    def heads_first(self) -> tuple:
        """(q, k, v) as (B, H, N, d)."""
        if self.kwargs.get("skip_reshape", False):
            return self.q, self.k, self.v
        return tuple(split_heads(t, self.heads) for t in (self.q, self.k, self.v))

    @property
    def heads_first_output(self) -> bool:
        return self.kwargs.get("skip_output_reshape", False)

    def base(self):
        """The output without GAG: the chained override's, else the backend's."""
        return _base_attention(self.previous, self.func, self.q, self.k, self.v, self.heads, self.mask,
                               self.kwargs)


def _base_attention(previous, func, q, k, v, heads, mask, kwargs):
    if previous is not None:
        return previous(func, q, k, v, heads, mask=mask, **kwargs)
    return func(q, k, v, heads, mask=mask, **kwargs)


def install(model_patcher, architecture, selection, gate, observer, adapter) -> None:
    """Register the text-call hooks and the override on ``model_patcher`` (a clone).

    ``adapter.confirms(call)`` checks that the call's shapes fit the flavour;
    ``adapter.guide(call, rows, stats)`` returns the guided output."""
    text_calls.install(model_patcher, architecture)
    options = model_patcher.model_options["transformer_options"].copy()
    options[OVERRIDE_KEY] = _make_override(architecture, selection, gate, options.get(OVERRIDE_KEY), observer,
                                           adapter)
    model_patcher.model_options["transformer_options"] = options


def _make_override(architecture, selection, gate, previous, observer, adapter):
    def gag_override(func, q, k, v, heads, mask=None, **kwargs):
        options = kwargs.get("transformer_options") or {}
        text_len = text_calls.text_length(options, architecture, selection)
        if text_len is None:
            return _base_attention(previous, func, q, k, v, heads, mask, kwargs)
        call = AttentionCall(func, q, k, v, heads, mask, kwargs, text_len, previous)
        if not adapter.confirms(call):
            _warn_mismatch(architecture.name, tuple(call.heads_first[0].shape), tuple(call.heads_first[1].shape),
                           text_len)
            return call.base()
        admitted = gate.admit(options, q.shape[0], observer)
        if admitted is None:
            return call.base()
        return adapter.guide(call, *admitted)

    return gag_override


@functools.lru_cache(maxsize=64)
def _warn_mismatch(name, q_shape, k_shape, text_len) -> None:
    log.warning("GAG: %s: the attention call the model table names as text attention has q %s, k %s, which "
                "does not fit %d text tokens; left unguided (is this a model variant GAG does not know?)",
                name, q_shape, k_shape, text_len)
