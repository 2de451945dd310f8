"""The device accuracy check (bench/device_check.py), run on the CPU with small shapes."""

import torch

from bench import device_check

SMALL_CASES = [dict(name="cross", kind="cross", shape=(1, 2, 64, 13, 16)),
               dict(name="joint", kind="joint", shape=(1, 2, 40, 9, 16))]


def test_device_check_passes_on_cpu(monkeypatch, capsys):
    monkeypatch.setattr(device_check, "CASES", SMALL_CASES)
    assert device_check.main(["--device", "cpu"]) == 0
    assert capsys.readouterr().out.count(" ok") == 6


def test_device_check_fails_beyond_the_tolerance(monkeypatch, capsys):
    monkeypatch.setattr(device_check, "CASES", SMALL_CASES)
    monkeypatch.setattr(device_check, "TOLERANCE", {torch.bfloat16: 1e-9})
    assert device_check.main(["--device", "cpu"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_model_step_bench_runs_both_models(comfy, pack, monkeypatch, capsys):
    """bench.model_step end to end on shrunk configurations of its two models."""
    from bench import model_step

    unet = dict(model_step.SDXL_UNET, model_channels=32, num_res_blocks=[1, 1], channel_mult=[1, 2],
                transformer_depth=[0, 1], transformer_depth_output=[0, 0, 1, 1], transformer_depth_middle=1,
                num_head_channels=16)
    flux = dict(model_step.FLUX_SHAPED, hidden_size=64, num_heads=2, axes_dim=[8, 12, 12])
    monkeypatch.setattr(model_step, "SDXL_UNET", unet)
    monkeypatch.setattr(model_step, "FLUX_SHAPED", flux)
    model_step.main(["--size", "64", "--repeats", "1"])
    lines = [line for line in capsys.readouterr().out.splitlines() if "overhead" in line]
    assert [line.split()[0] for line in lines] == ["sdxl", "flux"]
    for line in lines:
        change = float(line.split("latent by ")[1].split()[0])
        assert change > 0.0  # the GAG model really was guided
