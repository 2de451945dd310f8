"""Validated GAG hyper-parameters: SPEC §1's defaults and its one table of allowed ranges.

``RANGES`` is the single source of the ranges: :class:`GAGSettings`, the public functions
(through :func:`check_guidance`) and the ComfyUI widgets all read it, so a range changes in
one place.
"""

import dataclasses
import math
import numbers

MODES = ("gag", "pladis")


@dataclasses.dataclass(frozen=True)
class Range:
    """The closed interval [low, high], or (low, high] when ``low_open``."""

    low: float
    high: float
    low_open: bool = False

    def __str__(self) -> str:
        return f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"

    def contains(self, value: float) -> bool:
        above_low = value > self.low if self.low_open else value >= self.low
        return above_low and value <= self.high


RANGES = {
    "lam": Range(0.0, 50.0),
    "zeta": Range(0.0, 1.0),
    "tau": Range(0.0, 1000.0, low_open=True),
    "alpha": Range(1.0, 2.0),
    "pladis_scale": Range(0.0, 20.0),
}
"""λ, ζ, τ (τ may also be None or +inf: cap off), α, and s of PLADIS mode."""
TAU_OFF = ' or None / inf ("off")'


def check_number(name: str, value, allowed: Range, *, extra: str = "") -> None:
    """Raise ValueError naming ``name``, its range and ``value`` unless ``value`` is a real
    number (not a bool, not NaN) inside ``allowed``."""
    if not _is_real(value) or math.isnan(value):
        raise ValueError(f"{name} must be a number in {allowed}{extra}, got {value!r}")
    if not allowed.contains(value):
        raise ValueError(f"{name} must be in {allowed}{extra}, got {value!r}")


def _is_real(value) -> bool:
    """A real number that is not a bool (float and int first: the attention calls check per chunk)."""
    return type(value) in (float, int) or (isinstance(value, numbers.Real) and not isinstance(value, bool))


def check_tau(tau) -> None:
    """τ: a number in (0, 1000], or None / +inf for no cap."""
    if tau is None or (_is_real(tau) and tau == math.inf):
        return
    check_number("tau", tau, RANGES["tau"], extra=TAU_OFF)


def check_mode(mode) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")


def check_guidance(*, lam, zeta, tau, mode="gag", pladis_scale=2.0, alpha=None) -> None:
    """Validate the arguments of ``guide`` and the attention functions like GAGSettings
    does (``alpha`` only when given); raises ValueError naming the first bad argument."""
    check_number("lam", lam, RANGES["lam"])
    check_number("zeta", zeta, RANGES["zeta"])
    check_tau(tau)
    if alpha is not None:
        check_number("alpha", alpha, RANGES["alpha"])
    check_mode(mode)
    check_number("pladis_scale", pladis_scale, RANGES["pladis_scale"])


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
        check_guidance(lam=self.lam, zeta=self.zeta, tau=self.tau, alpha=self.alpha, mode=self.mode,
                       pladis_scale=self.pladis_scale)

    def guidance_kwargs(self) -> dict:
        """Keyword arguments for ``gag_attention``, ``gag_correction`` and
        ``gag_joint_attention`` (``guide`` takes them without ``alpha``)."""
        return dataclasses.asdict(self)
