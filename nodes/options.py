"""Node-level settings: the GAG hyper-parameters plus step window, layer selection, cond-only.

This is the value that travels on the ``GAG_SETTINGS`` socket.
"""

import dataclasses
import re

from ..gag_core import GAGSettings

BLOCK_KINDS = ("input", "middle", "output", "double", "single")
AUTO = "auto"
_TOKEN = re.compile(r"^(?P<kind>[a-z]+)(?::(?P<first>\d+)(?:-(?P<last>\d+))?)?$")


@dataclasses.dataclass(frozen=True)
class BlockSelection:
    """Which attention blocks are guided.

    ``ranges`` maps a block kind (UNet: input / middle / output; DiT: double / single) to
    inclusive index ranges, or to None for every block of that kind. ``auto`` defers to
    the architecture's default (UNet: input + output; DiT: all joint blocks).

    Text form (the ``blocks`` widget): ``auto``, or kinds separated by spaces or commas,
    each optionally with an index or an inclusive range: ``input output``,
    ``double:0-9 single``, ``input:4 output:0-2``. UNet indices are positions in
    ``input_blocks`` / ``output_blocks``.
    """

    ranges: tuple = ()
    auto: bool = True

    @classmethod
    def parse(cls, text: str) -> "BlockSelection":
        text = (text or "").strip().lower()
        if text in ("", AUTO):
            return cls()
        ranges = {}
        for token in re.split(r"[\s,;]+", text):
            match = _TOKEN.match(token)
            if not match or match["kind"] not in BLOCK_KINDS:
                raise ValueError(
                    f"blocks: cannot read {token!r}; use 'auto' or kinds from {', '.join(BLOCK_KINDS)}, "
                    "each optionally with ':N' or ':FIRST-LAST' (e.g. 'input output' or 'double:0-9 single')")
            kind = match["kind"]
            if match["first"] is None:
                ranges[kind] = None
                continue
            first = int(match["first"])
            last = int(match["last"]) if match["last"] is not None else first
            if last < first:
                raise ValueError(f"blocks: range {token!r} ends before it starts")
            if kind in ranges and ranges[kind] is None:
                continue
            ranges.setdefault(kind, []).append((first, last))
        frozen = tuple((kind, None if spans is None else tuple(spans)) for kind, spans in ranges.items())
        return cls(ranges=frozen, auto=False)

    def resolve(self, default_kinds: tuple) -> "BlockSelection":
        """Replace ``auto`` by the architecture's default kinds."""
        if not self.auto:
            return self
        return BlockSelection(ranges=tuple((kind, None) for kind in default_kinds), auto=False)

    def includes(self, kind: str, index: int) -> bool:
        for selected_kind, spans in self.ranges:
            if selected_kind == kind and (spans is None or any(a <= index <= b for a, b in spans)):
                return True
        return False

    def kinds(self) -> tuple:
        return tuple(kind for kind, _ in self.ranges)


@dataclasses.dataclass(frozen=True)
class NodeSettings:
    """Everything ``Apply GAG`` needs.

    start_percent / end_percent: the part of the schedule where guidance runs, in
    ComfyUI's convention (0 = first step, 1 = last), converted with
    ``model_sampling.percent_to_sigma``. cond_only: guide only the conditional batch
    chunk (the unconditional one keeps the original attention). diagnostics: record
    per-step guidance statistics for the GAG Diagnostics Plot node.
    """

    guidance: GAGSettings = GAGSettings()
    start_percent: float = 0.0
    end_percent: float = 1.0
    blocks: BlockSelection = BlockSelection()
    cond_only: bool = False
    diagnostics: bool = False

    def __post_init__(self):
        for name in ("start_percent", "end_percent"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        if self.start_percent > self.end_percent:
            raise ValueError(f"start_percent ({self.start_percent}) must not exceed end_percent ({self.end_percent})")
