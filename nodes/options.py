"""Node-level settings: the GAG hyper-parameters plus step window, layer selection, cond-only.

This is the value that travels on the ``GAG_SETTINGS`` socket.
"""

import dataclasses
import re

from ..gag_core import GAGSettings
from ..gag_core.settings import Range, check_number

BLOCK_KINDS = ("input", "middle", "output", "double", "single")
AUTO = "auto"
_TOKEN = re.compile(r"^(?P<kind>[a-z]+)(?::(?P<first>\d+)(?:-(?P<last>\d+))?)?$")
BLOCKS_SYNTAX = ("write 'auto' or block kinds with optional ':N' or ':FIRST-LAST', e.g. 'input output:0-2' "
                 "(SD1.5/SDXL) or 'double:0-9 single' (DiT)")
PERCENT = Range(0.0, 1.0)


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
        """Read the ``blocks`` widget; ValueError quoting the part it cannot read, in the
        widget's own syntax."""
        if not isinstance(text, str):
            raise ValueError(f"blocks must be text; {BLOCKS_SYNTAX}; got {text!r}")
        text = text.strip().lower()
        if not text:
            raise ValueError(f"blocks is empty; {BLOCKS_SYNTAX}")
        if text == AUTO:
            return cls()
        ranges = {}
        for token in re.split(r"[\s,;]+", text):
            match = _TOKEN.match(token)
            if not match or match["kind"] not in BLOCK_KINDS:
                raise ValueError(f"blocks: cannot read {token!r} in {text!r}; {BLOCKS_SYNTAX}")
            kind = match["kind"]
            if match["first"] is None:
                ranges[kind] = None
                continue
            first = int(match["first"])
            last = int(match["last"]) if match["last"] is not None else first
            if last < first:
                raise ValueError(f"blocks: {token!r} ends before it starts; write '{kind}:{last}-{first}'")
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

    def text(self) -> str:
        """The selection in the widget's syntax (``auto``, ``input:4-5 output``)."""
        if self.auto:
            return AUTO
        return " ".join(kind if spans is None else " ".join(_span_text(kind, a, b) for a, b in spans)
                        for kind, spans in self.ranges)


def _span_text(kind: str, first: int, last: int) -> str:
    return f"{kind}:{first}" if first == last else f"{kind}:{first}-{last}"


def blocks_text(available: dict) -> str:
    """Block kind → sorted indices, in the ``blocks`` widget's syntax with consecutive
    indices joined: {"input": [1, 2, 4], "middle": [0]} → ``input:1-2 input:4 middle:0``."""
    parts = []
    for kind, indices in available.items():
        runs = []
        for index in indices:
            if runs and index == runs[-1][1] + 1:
                runs[-1][1] = index
            else:
                runs.append([index, index])
        parts.extend(_span_text(kind, first, last) for first, last in runs)
    return " ".join(parts)


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
        check_number("start_percent", self.start_percent, PERCENT)
        check_number("end_percent", self.end_percent, PERCENT)
        if self.start_percent > self.end_percent:
            raise ValueError(f"start_percent ({self.start_percent}) must not exceed end_percent ({self.end_percent})")
