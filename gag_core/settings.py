"""Validated GAG hyper-parameters (SPEC §1 defaults and ranges)."""

import dataclasses
import math

MODES = ("gag", "pladis")


@dataclasses.dataclass(frozen=True)
class GAGSettings:
    """The guidance hyper-parameters.

    lam: λ, guidance strength, [0, 50].
    zeta: ζ, weight of the orthogonal part Δ⊥, [0, 1] (0 keeps only Δ∥).
    tau: τ, cap on ‖λ-free update‖ per query, (0, 1000]; None (or inf) turns the cap off.
    alpha: α of the sparse map, [1, 2] (1 = softmax, i.e. no guidance).
    mode: "gag" or "pladis".
    pladis_scale: s of PLADIS mode (out = D + s (S − D)), [0, 20].
    """

    lam: float = 5.0
    zeta: float = 0.0
    tau: float | None = 15.0
    alpha: float = 1.5
    mode: str = "gag"
    pladis_scale: float = 2.0

    def __post_init__(self):
        _check_range("lam", self.lam, 0.0, 50.0)
        _check_range("zeta", self.zeta, 0.0, 1.0)
        _check_range("alpha", self.alpha, 1.0, 2.0)
        _check_range("pladis_scale", self.pladis_scale, 0.0, 20.0)
        if self.tau is not None and not (isinstance(self.tau, (int, float)) and math.isinf(self.tau) and self.tau > 0):
            _check_range("tau", self.tau, 0.0, 1000.0, low_open=True, extra=' or None / inf ("off")')
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")

    def guidance_kwargs(self) -> dict:
        """Keyword arguments for ``gag_attention``, ``gag_correction`` and
        ``gag_joint_attention`` (``guide`` takes them without ``alpha``)."""
        return dataclasses.asdict(self)


def _check_range(name, value, low, high, *, low_open=False, extra=""):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        opening = "(" if low_open else "["
        raise ValueError(f"{name} must be a number in {opening}{low:g}, {high:g}]{extra}, got {value!r}")
    below = value <= low if low_open else value < low
    if below or value > high:
        raise ValueError(f"{name} must be in {'(' if low_open else '['}{low:g}, {high:g}]{extra}, got {value!r}")
