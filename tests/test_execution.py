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
