"""The device accuracy check (bench/device_check.py), run on the CPU with small shapes."""

import torch

from bench import device_check

SMALL_CASES = {"cross": ("cross", (1, 2, 64, 13, 16)), "joint": ("joint", (1, 2, 40, 9, 16))}


def test_device_check_passes_on_cpu(monkeypatch, capsys):
    monkeypatch.setattr(device_check, "CASES", SMALL_CASES)
    assert device_check.main(["--device", "cpu"]) == 0
    assert capsys.readouterr().out.count(" ok") == 6


def test_device_check_fails_beyond_the_tolerance(monkeypatch, capsys):
    monkeypatch.setattr(device_check, "CASES", SMALL_CASES)
    monkeypatch.setattr(device_check, "TOLERANCE", {torch.bfloat16: 1e-9})
    assert device_check.main(["--device", "cpu"]) == 1
    assert "FAIL" in capsys.readouterr().out
