"""GAGSettings defaults and validation messages."""

import math

import pytest

from gag_core import GAGSettings


pytestmark = pytest.mark.host_independent  # gag_core only: CI runs it on the first host alone

def test_defaults_follow_spec():
    s = GAGSettings()
    assert (s.lam, s.zeta, s.tau, s.alpha, s.mode, s.pladis_scale) == (5.0, 0.0, 15.0, 1.5, "gag", 2.0)
    assert s.guidance_kwargs() == dict(lam=5.0, zeta=0.0, tau=15.0, alpha=1.5, mode="gag", pladis_scale=2.0)


@pytest.mark.parametrize("field,value,range_text", [
    ("lam", -0.1, "[0, 50]"), ("lam", 50.5, "[0, 50]"),
    ("zeta", 1.01, "[0, 1]"), ("alpha", 0.99, "[1, 2]"), ("alpha", 2.5, "[1, 2]"),
    ("tau", 0.0, "(0, 1000]"), ("tau", 1001.0, "(0, 1000]"), ("tau", -math.inf, "(0, 1000]"),
    ("pladis_scale", 21.0, "[0, 20]"), ("lam", float("nan"), "[0, 50]"), ("zeta", "0.5", "[0, 1]"),
])
def test_invalid_values_name_field_and_range(field, value, range_text):
    with pytest.raises(ValueError) as info:
        GAGSettings(**{field: value})
    assert field in str(info.value) and range_text in str(info.value)


def test_cap_off_and_mode():
    assert GAGSettings(tau=None).tau is None
    assert GAGSettings(tau=math.inf).tau == math.inf
    with pytest.raises(ValueError, match="mode"):
        GAGSettings(mode="apg")
