"""GAG Settings' widget values: the blocks syntax, its messages, and checks that hold whatever the cap."""

import math

import pytest


@pytest.fixture(scope="module")
def options(pack):
    from comfyui_gag.nodes import options

    return options


@pytest.fixture(scope="module")
def from_widgets(pack):
    from comfyui_gag.nodes.definitions import SETTINGS_WIDGETS, settings_from_widgets

    defaults = {widget.name: widget.default for widget in SETTINGS_WIDGETS}
    return lambda **changes: settings_from_widgets(**{**defaults, **changes})


@pytest.mark.parametrize("text,canonical", [
    ("auto", "auto"), (" AUTO ", "auto"), ("input output", "input output"), ("input:4 input:5-7", "input:4 input:5-7"),
    ("double:0-9, single", "double:0-9 single"), ("output:2-2", "output:2"), ("input input:3", "input"),
])
def test_blocks_read_back_in_the_widget_syntax(options, text, canonical):
    selection = options.BlockSelection.parse(text)
    assert selection.text() == canonical
    assert options.BlockSelection.parse(canonical) == selection


@pytest.mark.parametrize("text,quoted", [
    ("", "blocks is empty"), ("   ", "blocks is empty"), ("input 3", "cannot read '3' in 'input 3'"),
    ("attn:1", "cannot read 'attn:1'"), ("input:3-1", "'input:3-1' ends before it starts; write 'input:1-3'"),
    ("input:-1", "cannot read 'input:-1'"), (3, "blocks must be text"),
])
def test_unreadable_blocks_are_refused_in_the_widget_syntax(options, text, quoted):
    with pytest.raises(ValueError) as error:
        options.BlockSelection.parse(text)
    assert quoted in str(error.value)
    assert "'double:0-9 single'" in str(error.value) or "write 'input:1-3'" in str(error.value)


def test_available_blocks_are_listed_as_the_widget_would_take_them(options):
    available = {"input": [1, 2, 4, 5, 7, 8], "middle": [0], "output": list(range(9))}
    text = options.blocks_text(available)
    assert text == "input:1-2 input:4-5 input:7-8 middle:0 output:0-8"
    selection = options.BlockSelection.parse(text)
    assert all(selection.includes(kind, i) for kind, indices in available.items() for i in indices)
    assert not selection.includes("input", 3) and not selection.includes("output", 9)


@pytest.mark.parametrize("cap", [True, False])
@pytest.mark.parametrize("tau", [float("nan"), 0.0, -1.0, math.inf, 1e4])
def test_tau_is_checked_even_while_the_cap_is_off(from_widgets, cap, tau):
    with pytest.raises(ValueError, match=r"tau must be (a number )?in \(0, 1000\].*max step \(τ\)"):
        from_widgets(tau=tau, cap=cap)


@pytest.mark.parametrize("name,value,expected", [
    ("lam", float("nan"), r"lam must be a number in \[0, 50\], got nan \[widget: strength \(λ\)\]"),
    ("mode", "foo", r"mode must be one of GAG, PLADIS, got 'foo' \[widget: method\]"),
    ("start_percent", float("nan"), r"start_percent must be a number in \[0, 1\], got nan$"),
    ("end_percent", -0.1, r"end_percent must be in \[0, 1\], got -0.1$"),
])
def test_messages_name_the_input_its_range_the_value_and_the_label(from_widgets, name, value, expected):
    with pytest.raises(ValueError, match=expected):
        from_widgets(**{name: value})
