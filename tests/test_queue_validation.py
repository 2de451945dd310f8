"""Bad GAG Settings values are refused by ``/prompt`` itself (HTTP 400), over the real server.

A fuzz set of wrong types, NaN, infinities, values past each range end, unknown modes and
unreadable ``blocks`` goes through ``POST /prompt`` (Python's json writes NaN and Infinity
literals, which the server's parser accepts). Each must come back 400 with an error that
names the input, and, where the pack's own check answers, its range or syntax and the
value. None may reach the queue or the history: ``/history`` must stay strict JSON (a
prompt holding NaN used to make it unreadable for the front end) and the server must still
run a good prompt afterwards. The table of cases, statuses and messages is written to
test-output/queue_validation.md.
"""

import json

import pytest

from devtools import demo
from devtools.comfy_host import REPO_ROOT
from devtools.comfy_server import PromptRejected, ServerError
from server_fixture import comfy_server_fixture, server_fixture  # noqa: F401  (fixtures)

NAN, INF = float("nan"), float("inf")
RANGES = {"lam": "[0, 50]", "zeta": "[0, 1]", "tau": "(0, 1000]", "alpha": "[1, 2]", "pladis_scale": "[0, 20]",
          "start_percent": "[0, 1]", "end_percent": "[0, 1]"}
BELOW = {"lam": -0.1, "zeta": -0.01, "tau": 0.0, "alpha": 0.99, "pladis_scale": -1.0, "start_percent": -0.01,
         "end_percent": -0.5}
ABOVE = {"lam": 50.5, "zeta": 1.01, "tau": 1000.5, "alpha": 2.01, "pladis_scale": 20.5, "start_percent": 1.01,
         "end_percent": 1.5}
BLOCKS_SYNTAX = "'double:0-9 single'"  # the example every blocks message ends with


def fuzz_cases():
    """(case id, settings changes, the input at fault, how the message is checked)."""
    cases = []
    for name in RANGES:
        for label, value in (("nan", NAN), ("'nan'", "nan"), ("inf", INF), ("-inf", -INF), ("'1e999'", "1e999"),
                             ("below", BELOW[name]), ("above", ABOVE[name])):
            cases.append((f"{name}={label}", {name: value}, name, "range"))
        for label, value in (("'abc'", "abc"), ("null", None), ("{}", {}), ("''", "")):
            cases.append((f"{name}={label}", {name: value}, name, "type"))
        cases.append((f"{name}=[1,2,3]", {name: [1, 2, 3]}, name, "link"))
    for label, value in (("'foo'", "foo"), ("''", ""), ("'gag'", "gag"), ("'PLADIS '", "PLADIS "), ("1", 1),
                         ("null", None), ("{'__value__': 'foo'}", {"__value__": "foo"})):
        cases.append((f"mode={label}", {"mode": value}, "mode", "option"))
    for label, value in (("''", ""), ("'   '", "   "), ("'input 3'", "input 3"), ("'input:3-1'", "input:3-1"),
                         ("'attn'", "attn"), ("'input:-1'", "input:-1"), ("'double:x'", "double:x"), ("3", 3),
                         ("null", None), ("'auto auto'", "auto auto")):
        cases.append((f"blocks={label}", {"blocks": value}, "blocks", "syntax"))
    cases.append(("start_percent>end_percent", {"start_percent": 0.9, "end_percent": 0.1}, "start_percent", "order"))
    return cases


CASES = fuzz_cases()
TABLE = []  # (case, status, error type, message) rows, written once all cases ran


def strict_json(raw: bytes):
    """Parse as a browser's JSON.parse would: NaN / Infinity literals are errors."""
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(raw.decode(), parse_constant=refuse)


@pytest.fixture(scope="module")
def object_info(comfy_server):
    return comfy_server.object_info()


@pytest.fixture(scope="module")
def history_before(comfy_server):
    return set(strict_json(comfy_server.get_bytes("/history")))


@pytest.mark.parametrize("case,changes,name,kind", CASES, ids=[c[0] for c in CASES])
def test_bad_setting_is_refused_by_prompt(server, object_info, history_before, case, changes, name, kind):
    prompt = demo.sdxl_prompt(object_info, settings=changes, prefix="fuzz")
    with pytest.raises(PromptRejected) as rejected:
        server.queue_prompt(prompt)
    body = rejected.value.body
    errors = body["node_errors"]["5"]["errors"]  # GAG Settings is node 5
    TABLE.append((case, 400, errors[0]["type"], errors[0]["details"]))
    messages = [f"{error['message']}: {error['details']}" for error in errors]
    assert any(name in message for message in messages), messages
    value = changes[name]
    if kind in ("range", "option", "syntax", "order"):  # the pack's own check: input, range or syntax, value
        (message,) = {error["details"].split(" - ", 1)[1] for error in errors}  # the same text under every input
        assert all(error["type"] == "custom_validation_failed" for error in errors)
        assert message.startswith(name) or message.startswith("blocks")
        if kind == "range":
            assert RANGES[name] in message and repr(float(value)) in message, message
        elif kind == "option":
            shown = value["__value__"] if isinstance(value, dict) else value  # the host unwraps __value__
            assert "one of GAG, PLADIS" in message and f"got {shown!r}" in message, message
        elif kind == "syntax":
            assert repr(str(value).strip().lower())[1:-1] in message, message
            assert BLOCKS_SYNTAX in message or "write 'input:1-3'" in message, message  # the syntax, or the fix
        else:
            assert "end_percent" in message and "0.9" in message and "0.1" in message
    else:  # the host cannot even read the value as a FLOAT (or as a link): its own error names the input
        assert any(error["extra_info"].get("input_name") == name and error["type"] in ("invalid_input_type",
                                                                                       "bad_linked_input")
                   for error in errors), errors
    assert set(strict_json(server.get_bytes("/history"))) == history_before  # nothing was queued


def test_history_is_strict_json_and_a_good_prompt_still_runs(server, object_info, history_before):
    """Runs after the fuzz cases (file order): the server is healthy and its history readable."""
    raw = server.get_bytes("/history")
    assert set(strict_json(raw)) == history_before
    assert strict_json(server.get_bytes("/queue")) == {"queue_running": [], "queue_pending": []}
    entry = server.wait_for(server.queue_prompt(demo.sdxl_prompt(object_info, prefix="after_fuzz")))
    assert demo.output_files(entry)
    strict_json(server.get_bytes("/history"))
    write_table()


@pytest.mark.parametrize("changes", [dict(lam=0.0, zeta=1.0, tau=1000.0, alpha=2.0, pladis_scale=20.0),
                                     dict(cap=False, mode="PLADIS", start_percent=0.5, end_percent=0.5,
                                          blocks="input:4-5 output")],
                         ids=["range ends", "pladis window blocks"])
def test_values_at_the_range_ends_are_accepted_and_run(server, object_info, changes):
    entry = server.wait_for(server.queue_prompt(demo.sdxl_prompt(object_info, settings=changes, prefix="edge")))
    assert demo.output_files(entry)


def test_a_linked_value_is_checked_when_it_is_known(server, object_info):
    """A widget fed by another node's output has no value at queue time: the prompt is
    accepted and the value checked when GAG Settings runs."""
    prompt = demo.sdxl_prompt(object_info, prefix="linked")
    prompt["20"] = {"class_type": "PrimitiveFloat", "inputs": {"value": 3.0}}
    prompt["5"]["inputs"]["lam"] = ["20", 0]
    assert demo.output_files(server.wait_for(server.queue_prompt(prompt)))
    prompt["20"]["inputs"]["value"] = 75.0
    prompt_id = server.queue_prompt(prompt)  # accepted: lam is unknown at queue time ...
    with pytest.raises(ServerError, match=r"lam must be in \[0, 50\], got 75.0"):
        server.wait_for(prompt_id)  # ... and refused, by name and range, when it is known


def write_table():
    path = REPO_ROOT / "test-output" / "queue_validation.md"
    path.parent.mkdir(exist_ok=True)
    lines = ["| case | status | error type | message |", "|---|---|---|---|"]
    for case, status, kind, message in TABLE:
        lines.append(f"| `{case}` | {status} | {kind} | {message.replace('|', '/')} |")
    summary = f"\n{len(TABLE)} cases, {sum(row[1] == 400 for row in TABLE)} answered 400.\n"
    path.write_text("\n".join(lines) + summary, encoding="utf-8")
