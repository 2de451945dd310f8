"""The device-path switch and the IEEE float32 matmul guard (gag_core/execution.py).

The precision settings are process-wide and PyTorch refuses some reads once its legacy and
new APIs were mixed, so every scenario that changes them runs in a fresh interpreter.
"""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from gag_core import execution

pytestmark = pytest.mark.host_independent  # gag_core only: CI runs it on the first host alone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_isolated(code: str) -> str:
    """Run ``code`` in a fresh Python with the repository importable; return its stdout."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=ROOT), timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_device_path_is_every_device_but_the_cpu_unless_forced():
    assert not execution.device_path(torch.device("cpu"))
    assert execution.device_path(torch.device("meta"))
    with execution.forced_device_path():
        assert execution.device_path(torch.device("cpu"))
        with execution.forced_device_path():
            pass
        assert execution.device_path(torch.device("cpu"))  # a nested exit keeps the outer context
    assert not execution.device_path(torch.device("cpu"))


PRECISION_PROBE = """
    import torch
    from gag_core.execution import ieee_fp32_matmuls

    def settings():
        return [torch.backends.cuda.matmul.fp32_precision, torch.backends.mkldnn.matmul.fp32_precision]

    {setup}
    before = settings()
    with ieee_fp32_matmuls():
        inside = settings()
    try:
        with ieee_fp32_matmuls():
            raise KeyError("boom")
    except KeyError:
        pass
    print(before, inside, settings())
    {after}
"""


@pytest.mark.parametrize("setup", [
    'torch.set_float32_matmul_precision("high")',      # the legacy API: TF32 for cuBLAS and oneDNN
    'torch.set_float32_matmul_precision("medium")',    # oneDNN in bf16
    "torch.backends.cuda.matmul.allow_tf32 = True",
    'torch.backends.cuda.matmul.fp32_precision = "tf32"',  # the new per-backend API
])
def test_tf32_is_off_inside_and_the_user_setting_comes_back(setup):
    before, inside, after = run_isolated(PRECISION_PROBE.format(setup=setup, after="")).strip().split("] [")
    assert "tf32" in before or "bf16" in before
    assert "tf32" not in inside and "bf16" not in inside
    assert after.strip("[]") == before.strip("[]")  # restored, also after an exception


def test_an_inherited_setting_still_follows_the_global_one_afterwards():
    """A backend setting left unset inherits the global one; after the guard it must still
    inherit, not keep a copy of the value it had."""
    out = run_isolated(PRECISION_PROBE.format(setup='torch.backends.fp32_precision = "tf32"', after="""
    torch.backends.fp32_precision = "ieee"
    print(settings())"""))
    assert out.splitlines()[-1] == "['ieee', 'ieee']"


def test_untouched_when_the_user_kept_ieee():
    out = run_isolated(PRECISION_PROBE.format(setup="", after=""))
    assert out.strip() == "['none', 'none'] ['none', 'none'] ['none', 'none']"


def test_guided_matmuls_run_in_ieee_on_both_paths_and_the_setting_is_restored():
    """With TF32 on globally, every float32 matmul of a guided call (the device path forced on
    CPU tensors, the CPU path, and the dense fallback) sees IEEE precision, and TF32 is on
    again after the call."""
    out = run_isolated("""
        import torch
        from torch.utils._python_dispatch import TorchDispatchMode
        import gag_core
        from gag_core import execution
        from gag_core.attention import _chunked_attention_with_logsumexp

        class Matmuls(TorchDispatchMode):
            seen = []
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                if func._schema.name in ("aten::mm", "aten::bmm", "aten::baddbmm", "aten::addmm"):
                    self.seen.append(torch.backends.cuda.matmul.fp32_precision)
                return func(*args, **(kwargs or {}))

        torch.set_float32_matmul_precision("high")
        q, k, v = (torch.randn(1, 2, n, 8) for n in (12, 5, 5))
        kw = dict(lam=5.0, zeta=0.0, tau=15.0, alpha=1.5, backend="torch")
        with Matmuls():
            gag_core.gag_attention(q, k, v, **kw)
            with execution.forced_device_path():
                gag_core.gag_attention(q, k, v, **kw)
                gag_core.gag_joint_attention(q, q, q, text_len=4, **kw)
            _chunked_attention_with_logsumexp(q, k, v, None)
        print(sorted(set(Matmuls.seen)), len(Matmuls.seen), torch.backends.cuda.matmul.fp32_precision)
    """)
    precisions, count, after = out.strip().rsplit(" ", 2)
    assert precisions == "['ieee']" and int(count) >= 8
    assert after == "tf32"
