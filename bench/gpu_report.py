"""``python -m bench.gpu_report``: the GPU measurements of issue 11 in one run (about 5 minutes
on one recent NVIDIA GPU, most of it building the random-weight models on the CPU).

1. ``bench.device_check``: accuracy in float32, bfloat16 and float16 on both backends;
2. ``python -m bench`` in ``--dtype`` (bfloat16) for each backend: timings against SDPA and
   the op audit per guided layer (kernels, host syncs, MiB);
3. ``bench.model_step`` at ``--size``² (1024): one SDXL and one FLUX-shaped sampler step
   without GAG and with GAG on each backend, and a ``torch.profiler`` summary of one step
   of each variant, written to ``--out``.

Everything printed also goes to ``OUT/report.txt``. Needs the CUDA build of torch==2.13.0
(PyPI's default wheel, so ``scripts/setup-dev.sh`` on the GPU machine), triton and the
ComfyUI host. Exits 1 when the accuracy check fails. ``--device cpu`` with small sizes runs
the same steps on the CPU (tests/test_bench.py).
"""

import argparse
import contextlib
import os
import sys

from . import device_check, model_step, run


class _Tee:
    """Writes to several text streams at once."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self):
        for stream in self.streams:
            stream.flush()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--size", type=int, default=1024, help="image side of the sampler steps, in pixels")
    parser.add_argument("--repeats", type=int, default=3, help="timed sampler steps per variant")
    parser.add_argument("--backends", default="triton,torch", help="gag_core backends to time")
    parser.add_argument("--out", default="gpu-report", help="folder for report.txt and the profiles")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "report.txt"), "w") as report, \
            contextlib.redirect_stdout(_Tee(sys.stdout, report)):
        print(f"== bench.device_check --device {args.device}", flush=True)
        accuracy = device_check.main(["--device", args.device])
        for backend in args.backends.split(","):
            print(f"== python -m bench --device {args.device} --dtype {args.dtype} --backend {backend}", flush=True)
            run.main(["--device", args.device, "--dtype", args.dtype, "--backend", backend]
                     + (["--no-ops"] if backend != args.backends.split(",")[0] else []))
        print(f"== bench.model_step --size {args.size} (profiles in {args.out})", flush=True)
        model_step.main(["--device", args.device, "--dtype", args.dtype, "--size", str(args.size),
                         "--repeats", str(args.repeats), "--backends", args.backends, "--profile", args.out]
                        + (["--threads", str(os.cpu_count() or 2)] if args.device != "cpu" else []))
    return accuracy


if __name__ == "__main__":
    sys.exit(main())
