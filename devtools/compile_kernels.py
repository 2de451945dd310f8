"""Compile the fused GAG kernel ahead of time for NVIDIA GPUs, without one, and report resources.

``python -m devtools.compile_kernels [--arch 80,86,89,90] [--all | --variants 0,2]`` runs Triton's real
compiler (TTIR → PTX → ptxas, all shipped in the triton wheel) for representative variants of
``gag_core.triton_attention._gag_text_attention_kernel`` and prints, per variant, shared
memory, registers and spill stack as ptxas reports them. It catches what Triton's CPU
interpreter cannot (code that only fails to compile for a GPU) and shows whether a variant
fits consumer GPUs (99 KiB of shared memory per block on sm_86/sm_89). Exit status 1 when a
variant fails to compile, spills, or exceeds that shared memory.
"""

import argparse
import dataclasses
import pathlib
import subprocess
import sys
import tempfile
import time

SHARED_LIMIT = 99 * 1024
"""Largest shared memory per block on sm_86 / sm_89 (RTX 30xx / 40xx): what every variant must fit."""
CONSTEXPR_NAMES = ("POWER", "PLADIS", "ZETA_ZERO", "CAP", "MASK_KIND", "EPILOGUE", "HAS_JOINT_LSE", "STEPS",
                   "SINGLE_TILE", "BLOCK_M", "BLOCK_N", "BLOCK_D", "WITH_ITERATIONS", "INTERPRET")
FLOAT_ARGUMENTS = ("sm_scale", "lam", "zeta", "tau", "pladis_scale", "margin", "floor", "tiny", "sparse_norm_eps")
POINTER_TYPES = {"bfloat16": "*bf16", "float16": "*fp16", "float32": "*fp32"}


@dataclasses.dataclass(frozen=True)
class Variant:
    """One specialisation, as ``fused_text_attention`` would launch it for these inputs."""

    dtype: str
    n_keys: int
    head_dim: int
    power: int = 2
    mask_kind: int = 0
    epilogue: str = "output"
    zeta_zero: bool = True

    def describe(self) -> str:
        return (f"{self.dtype:<8} keys {self.n_keys:<4} d {self.head_dim:<4} power {self.power} "
                f"mask {self.mask_kind} {self.epilogue:<11} zeta {'0' if self.zeta_zero else '>0'}")


DEFAULT_VARIANTS = (
    Variant("bfloat16", 77, 64),                                   # SDXL attn2
    Variant("bfloat16", 512, 64, mask_kind=1),                     # 64-wide heads, tiled keys
    Variant("float16", 77, 128, mask_kind=1, zeta_zero=False),    # single tile, widest head
    Variant("bfloat16", 512, 128, mask_kind=2, epilogue="joint_image"),  # FLUX joint, tiled keys
    Variant("bfloat16", 512, 128, power=1, epilogue="correction"),
    Variant("float32", 77, 64),
    Variant("float32", 256, 128, mask_kind=2),
)
ALL_VARIANTS = DEFAULT_VARIANTS + tuple(
    Variant(dtype, n_keys, head_dim, power)
    for dtype in ("bfloat16", "float16", "float32") for n_keys in (64, 128, 512) for head_dim in (40, 80, 256)
    for power in (2, 1))


def compile_variant(variant: Variant, arch: int):
    """(shared bytes, registers, spill stack bytes) of one variant compiled for sm_``arch``."""
    import torch
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from gag_core import triton_attention as kernels

    kernel = kernels._gag_text_attention_kernel
    single_tile, block_n = kernels.key_tiling(getattr(torch, variant.dtype), variant.n_keys, variant.head_dim)
    constants = dict(
        POWER=variant.power, PLADIS=False, ZETA_ZERO=variant.zeta_zero, CAP=True, MASK_KIND=variant.mask_kind,
        EPILOGUE=kernels.EPILOGUES[variant.epilogue], HAS_JOINT_LSE=variant.epilogue == "correction",
        STEPS=kernels.SOLVER_STEPS[variant.power], SINGLE_TILE=single_tile, BLOCK_M=kernels.query_block(getattr(torch, variant.dtype), variant.head_dim),
        BLOCK_N=block_n, BLOCK_D=kernels.padded_head_dim(variant.head_dim), WITH_ITERATIONS=False, INTERPRET=False)
    pointer = POINTER_TYPES[variant.dtype]
    signature = {}
    for name in kernel.arg_names:
        if name in CONSTEXPR_NAMES:
            signature[name] = "constexpr"
        elif name in ("Q", "K", "V", "OUT", "IMG_DENSE"):
            signature[name] = pointer
        elif name == "MASK":
            signature[name] = "*u8" if variant.mask_kind == kernels.MASK_BOOL else pointer
        elif name in ("IMG_LSE", "JOINT_LSE"):
            signature[name] = "*fp32"
        elif name == "ITERATIONS":
            signature[name] = "*i32"
        else:
            signature[name] = "fp32" if name in FLOAT_ARGUMENTS else "i32"
    source = ASTSource(fn=kernel, signature=signature,
                       constexprs={(kernel.arg_names.index(k),): v for k, v in constants.items()})
    compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=dict(num_warps=kernels.NUM_WARPS))
    registers, stack = _resource_usage(compiled.asm["cubin"])
    return compiled.metadata.shared, registers, stack


def _resource_usage(cubin: bytes) -> tuple:
    """(registers, stack bytes) of the kernel in ``cubin``, read by the wheel's cuobjdump."""
    import triton

    tool = pathlib.Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as file:
        file.write(cubin)
        file.flush()
        report = subprocess.run([str(tool), "--dump-resource-usage", file.name], capture_output=True, text=True,
                                check=True).stdout
    fields = dict(item.split(":", 1) for line in report.splitlines() if "REG:" in line for item in line.split()
                  if ":" in item)
    return int(fields["REG"]), int(fields["STACK"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="80,86,89,90", help="comma-separated compute capabilities")
    parser.add_argument("--all", action="store_true", help="a wider sweep of dtypes, key counts and head dims")
    parser.add_argument("--variants", default="", help="comma-separated indices into the default variants")
    args = parser.parse_args(argv)
    variants = ALL_VARIANTS if args.all else DEFAULT_VARIANTS
    if args.variants:
        variants = tuple(DEFAULT_VARIANTS[int(i)] for i in args.variants.split(","))
    failures = 0
    for arch in (int(a) for a in args.arch.split(",")):
        for variant in variants:
            begin = time.time()
            try:
                shared, registers, stack = compile_variant(variant, arch)
            except Exception as error:  # report every variant, then fail
                failures += 1
                print(f"sm_{arch} {variant.describe()}  FAILED: {type(error).__name__}: {error}", flush=True)
                continue
            ok = stack == 0 and shared <= SHARED_LIMIT
            failures += not ok
            print(f"sm_{arch} {variant.describe()}  shared {shared / 1024:5.1f} KiB  registers {registers:3d}  "
                  f"spill stack {stack:4d} B  {time.time() - begin:4.0f} s  {'ok' if ok else 'TOO BIG'}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
