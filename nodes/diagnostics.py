"""Per-step guidance diagnostics: a trace recorded while sampling, read by the plot node.

A ``GAGTrace`` is created by Apply GAG only when the settings ask for diagnostics; the
adapters then report each selected attention call to it (``guided`` / ``skipped``).
With diagnostics off no trace exists and none of this code runs.

Steps are indexed by the sampling schedule ComfyUI passes in
``transformer_options["sample_sigmas"]``: a call at sigma σ belongs to the step i with
sigmas[i] ≥ σ > sigmas[i+1] (so second-order samplers' intermediate calls count toward
their step). Each sampling run (one KSampler execution) starts a fresh trace, so a
trace never mixes prompts.
"""

import json

import comfy.patcher_extension
import torch

from ..gag_core import GuidanceStats
from .text_calls import BLOCK_KEY

TRACE_KEY = "gag_trace"
WRAPPER_KEY = "gag_diagnostics"


def block_kind(transformer_options: dict) -> str:
    """UNet: input / middle / output; DiT: double / single (also for DiTs without block ids)."""
    block = transformer_options.get("block") or transformer_options.get(BLOCK_KEY)
    return block[0] if block else str(transformer_options.get("block_type"))


def step_index(transformer_options: dict) -> int:
    sigmas = transformer_options.get("sigmas")
    schedule = transformer_options.get("sample_sigmas")
    if sigmas is None or schedule is None:
        return 0
    sigma = float(sigmas.max())
    return max(0, int((schedule >= sigma * (1 - 1e-5)).sum()) - 1)


class GAGTrace:
    """Statistics per (step, block kind) of the latest sampling run.

    Shared, not copied, when the patched model is cloned (the trace is a live recorder).
    """

    def __init__(self):
        self.entries = {}
        self.steps = 0

    def __deepcopy__(self, memo):
        return self

    def begin_run(self, schedule_length: int) -> None:
        self.entries = {}
        self.steps = max(0, schedule_length - 1)

    def _entry(self, options):
        key = (step_index(options), block_kind(options))
        if key not in self.entries:
            self.entries[key] = {"active": False, "stats": GuidanceStats(), "calls": 0}
        return self.entries[key]

    def guided(self, options: dict) -> GuidanceStats:
        entry = self._entry(options)
        entry["active"] = True
        entry["calls"] += 1
        return entry["stats"]

    def skipped(self, options: dict) -> None:
        self._entry(options)["calls"] += 1

    def records(self) -> list[dict]:
        """One record per (step, block kind), sorted by step then kind."""
        out = []
        for (step, kind), entry in sorted(self.entries.items()):
            out.append(dict(step=step, block=kind, active=entry["active"], calls=entry["calls"],
                            **entry["stats"].summary()))
        return out

    def to_json(self) -> str:
        return json.dumps({"steps": self.steps, "records": self.records()}, indent=1)


def install(model_patcher) -> GAGTrace:
    """Attach a fresh trace to ``model_patcher`` (a clone): reset at every sampling run."""
    trace = GAGTrace()

    def begin_run(executor, *args, **kwargs):
        sigmas = kwargs.get("sigmas", args[3] if len(args) > 3 else None)
        trace.begin_run(len(sigmas) if isinstance(sigmas, torch.Tensor) else 0)
        return executor(*args, **kwargs)

    model_patcher.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, WRAPPER_KEY, begin_run)
    options = model_patcher.model_options["transformer_options"].copy()
    options[TRACE_KEY] = trace
    model_patcher.model_options["transformer_options"] = options
    return trace


def trace_of(model_patcher) -> GAGTrace | None:
    return model_patcher.model_options.get("transformer_options", {}).get(TRACE_KEY)
