"""When and on which batch rows a patched attention call guides (shared by both adapters)."""

import dataclasses

import torch

COND = 0  # ComfyUI's cond_or_uncond marker for the conditional chunk


@dataclasses.dataclass(frozen=True)
class GuidanceGate:
    """sigma_start ≥ sigma ≥ sigma_end is the active window (ComfyUI convention: the
    sigmas of start_percent and end_percent). cond_only restricts guidance to the
    conditional batch chunks."""

    sigma_start: float
    sigma_end: float
    cond_only: bool
    # every attention call of one model evaluation shares one ``sigmas`` tensor: reading it
    # once per evaluation, not per layer, spares a device-to-host sync per layer on GPUs
    _last: list = dataclasses.field(default_factory=lambda: [None, True], compare=False, repr=False)

    @classmethod
    def for_model(cls, model_patcher, start_percent: float, end_percent: float, cond_only: bool):
        sampling = model_patcher.get_model_object("model_sampling")
        return cls(float(sampling.percent_to_sigma(start_percent)),
                   float(sampling.percent_to_sigma(end_percent)), cond_only)

    def in_window(self, transformer_options: dict) -> bool:
        """Whether this model evaluation's sigma is in the step window. Reading the sigma is
        a device→host sync on GPUs: once per model evaluation (cached on the ``sigmas``
        tensor), not per layer, which is what the samplers themselves do every step."""
        sigmas = transformer_options.get("sigmas")
        if sigmas is None:
            return True
        if self._last[0] is not sigmas:
            sigma = float(sigmas.max())
            self._last[:] = [sigmas, self.sigma_end <= sigma <= self.sigma_start]
        return self._last[1]

    def rows(self, transformer_options: dict, batch: int) -> tuple[slice, ...] | None:
        """Batch rows to guide: None for all rows, else slices of whole cond chunks (adjacent
        ones merged; possibly none). Slices keep the adapters on views of the batch, with no
        index tensor to copy to the device and no gather or scatter.

        With cond_only, a batch whose cond/uncond layout cannot be read (no
        ``cond_or_uncond``, or a batch that does not split into its chunks) is not guided at
        all, rather than risk guiding the unconditional rows."""
        if not self.cond_only:
            return None
        chunks = transformer_options.get("cond_or_uncond")
        if not chunks or batch % len(chunks):
            return ()
        if all(kind == COND for kind in chunks):  # e.g. CFG 1: every row is conditional
            return None
        per_chunk = batch // len(chunks)
        parts = []
        for index, kind in enumerate(chunks):
            start = index * per_chunk
            if kind != COND:
                continue
            if parts and parts[-1].stop == start:
                parts[-1] = slice(parts[-1].start, start + per_chunk)
            else:
                parts.append(slice(start, start + per_chunk))
        return tuple(parts)

    def admit(self, transformer_options: dict, batch: int, observer):
        """Decide one attention call: None when it runs unguided (outside the window, or no
        row to guide), else ``(rows, stats)`` for ``rows()`` and the ``GuidanceStats`` the
        observer wants filled (None without one). The observer hears about both outcomes."""
        rows = self.rows(transformer_options, batch)
        if not self.in_window(transformer_options) or rows == ():
            if observer is not None:
                observer.skipped(transformer_options)
            return None
        return rows, (observer.guided(transformer_options) if observer is not None else None)


def mask_rows(mask: torch.Tensor | None, part: slice, batch: int) -> torch.Tensor | None:
    """The batch slice ``part`` of a 4-D mask for a batch of ``batch``; a mask broadcast over
    the batch (size 1) serves every slice as it is."""
    return mask[part] if mask is not None and mask.shape[0] == batch else mask


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, N, H·d) → (B, H, N, d); (B, N, H, d) passes too, as ComfyUI's backends view it
    like (B, N, H·d) (SD3's v)."""
    return (x if x.ndim == 4 else x.unflatten(-1, (heads, -1))).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, N, d) → (B, N, H·d)."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)
