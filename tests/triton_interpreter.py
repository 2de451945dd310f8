"""A faster Triton interpreter for the kernel tests (TRITON_INTERPRET=1), bit-identical results.

Triton 3.9's interpreter patches the ``triton.language`` modules that a ``@triton.jit``
helper's globals hold on every call of that helper from a kernel (``_patch_lang``: a scan of
the whole package each time). The fused GAG kernel calls its helpers in every key tile of every
pass, so that re-patching takes about a third of the run time. Here, within one launch, the
modules seen by one globals dict are patched on the first call only; later calls find them
patched already (the stock re-patch would change nothing: it skips members it patched before).
Outside a launch nothing changes.
"""

import threading

import triton.runtime.interpreter as interpreter

_launches = threading.local()
_stock_launch = interpreter.GridExecutor.__call__
_stock_helper_call = interpreter.InterpretedFunction.__call__


def _launch(self, *args, **kwargs):
    outer = getattr(_launches, "patched", None)
    _launches.patched = set()  # ids of the globals dicts whose language modules this launch patched
    try:
        return _stock_launch(self, *args, **kwargs)
    finally:
        _launches.patched = outer


def _helper_call(self, *args, **kwargs):
    patched = getattr(_launches, "patched", None)
    if patched is None:
        return _stock_helper_call(self, *args, **kwargs)
    if id(self.fn.__globals__) not in patched:
        interpreter._patch_lang(self.fn)
        patched.add(id(self.fn.__globals__))
    function = self.rewrite()
    try:
        return function(*args, **kwargs)
    except Exception as error:  # as the stock call reports helper errors
        raise interpreter.InterpreterError(repr(error)) from error


def enable() -> None:
    """Install the faster helper calls (idempotent)."""
    interpreter.GridExecutor.__call__ = _launch
    interpreter.InterpretedFunction.__call__ = _helper_call
