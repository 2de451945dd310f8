"""The benchmark scripts' CPU-runnable parts, with small shapes: the device accuracy check,
the op audit of ``python -m bench`` and the GPU report (sampler steps, profiles)."""

import os

import pytest
import torch

from bench import device_check, run

SMALL_CASES = [dict(name="cross", kind="cross", shape=(1, 2, 64, 13, 16)),
               dict(name="joint", kind="joint", shape=(1, 2, 40, 9, 16))]


def test_device_check_passes_on_cpu(monkeypatch, capsys):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # the torch backend alone (conftest sets it)
    monkeypatch.setattr(device_check, "CASES", SMALL_CASES)
    assert device_check.main(["--device", "cpu"]) == 0
    assert capsys.readouterr().out.count(" ok") == 6


def test_device_check_fails_beyond_the_tolerance(monkeypatch, capsys):
    monkeypatch.setattr(device_check, "CASES", SMALL_CASES)
    monkeypatch.setattr(device_check, "TOLERANCE", {torch.bfloat16: 1e-9})
    assert device_check.main(["--device", "cpu"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_device_check_covers_the_triton_backend_where_it_runs(monkeypatch, capsys):
    """Under Triton's interpreter the triton backend runs on the CPU: both backends checked."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # before gag_core.triton_attention is first imported
    from gag_core import triton_attention

    assert triton_attention.INTERPRET, "gag_core.triton_attention was imported without TRITON_INTERPRET=1"
    monkeypatch.setattr(device_check, "CASES", SMALL_CASES)
    assert device_check.main(["--device", "cpu"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.endswith(" ok")]
    assert sorted({line.split()[0] for line in lines}) == ["torch", "triton"] and len(lines) == 12


def test_bench_prints_ops_and_syncs_per_layer_and_backend(monkeypatch, capsys):
    monkeypatch.setattr(run, "CASES", [dict(SMALL_CASES[0], name="P1 small cross"),
                                       dict(SMALL_CASES[1], name="P3 small joint")])
    monkeypatch.setattr(run, "_cpu_peaks", lambda name, args: ("n/a", "n/a"))
    run.main(["--repeats", "1"])
    audit = capsys.readouterr().out.split("ops per guided layer")[1].splitlines()[1:]
    assert len(audit) == 6  # 2 layers × (CPU path, torch device path, triton wrapper)
    for line in audit:
        kernels, syncs = int(line.split(" kernels")[0].split()[-1]), int(line.split(" syncs")[0].split()[-1])
        assert kernels > 0
        assert (syncs > 0) == ("CPU path" in line)  # the CPU path reads its certificate; the device paths never


@pytest.fixture
def small_models(comfy, pack, monkeypatch):
    """bench.model_step's SDXL and FLUX-shaped models, shrunk."""
    from bench import model_step

    unet = dict(model_step.SDXL_UNET, model_channels=32, num_res_blocks=[1, 1], channel_mult=[1, 2],
                transformer_depth=[0, 1], transformer_depth_output=[0, 0, 1, 1], transformer_depth_middle=1,
                num_head_channels=16)
    flux = dict(model_step.FLUX_SHAPED, hidden_size=64, num_heads=2, axes_dim=[8, 12, 12])
    monkeypatch.setattr(model_step, "SDXL_UNET", unet)
    monkeypatch.setattr(model_step, "FLUX_SHAPED", flux)


def test_gpu_report_runs_every_step_on_the_cpu(small_models, monkeypatch, capsys, tmp_path):
    """bench.gpu_report end to end on the CPU with shrunk cases and models: the accuracy
    check, the bench with its op audit, sampler steps with and without GAG, the profiles."""
    from bench import gpu_report

    monkeypatch.setattr(device_check, "CASES", SMALL_CASES)
    monkeypatch.setattr(run, "CASES", [dict(SMALL_CASES[0], name="P1 small cross")])
    monkeypatch.setattr(run, "_cpu_peaks", lambda name, args: ("n/a", "n/a"))
    assert gpu_report.main(["--device", "cpu", "--dtype", "float32", "--size", "64", "--repeats", "1",
                            "--backends", "torch", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "report.txt").read_text() == out
    steps = [line for line in out.splitlines() if "overhead" in line]
    assert [line.split()[0] for line in steps] == ["sdxl", "flux"]
    for line in steps:
        change = float(line.split("latent by ")[1].split()[0])
        assert change > 0.0  # the GAG model really was guided
    assert "ops per guided layer" in out and " ok" in out
    profiles = sorted(name for name in os.listdir(tmp_path) if name.startswith("profile_"))
    assert profiles == ["profile_flux_gag_torch.txt", "profile_flux_plain.txt", "profile_sdxl_gag_torch.txt",
                        "profile_sdxl_plain.txt"]
    assert "Self CPU" in (tmp_path / "profile_sdxl_gag_torch.txt").read_text()
