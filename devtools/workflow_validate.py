"""Check a UI-format (LiteGraph) workflow against a running server's ``/object_info``.

    report = validate(workflow, object_info)
    assert report.ok, report.problems

What is checked, node by node: the node type exists (pure front-end types such as Note
or Reroute are skipped, but only when the server lists no class of that name); every
input socket names an input of that class and every required socket input is linked (for
active nodes); widget values map onto the class's widget inputs in order, INT/FLOAT values
lie in [min, max], BOOLEAN/STRING values have that type and COMBO values are among the
options. Every link joins existing nodes and slots of compatible types.

A COMBO value that names a model or input file (``*.safetensors``, ``*.png``...) which the
server does not have is not a problem of the workflow: it goes to ``report.missing_files``.

``widget_values`` is also how devtools/workflow_api.py turns a UI workflow into API format.
"""

import dataclasses

# Front-end-only node types: the front end implements them, the server never sees them.
UI_ONLY_TYPES = frozenset({"Note", "MarkdownNote", "Reroute", "PrimitiveNode"})
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
# INT inputs with these names get a "control after generate" widget unless told otherwise.
SEED_NAMES = ("seed", "noise_seed")
# COMBO options that add an upload button, which also stores a value (e.g. "image").
UPLOAD_OPTIONS = ("image_upload", "animated_image_upload", "video_upload", "audio_upload")
FILE_SUFFIXES = (".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".onnx",
                 ".png", ".jpg", ".jpeg", ".webp", ".gif", ".mp4", ".webm", ".wav", ".mp3", ".flac")
ACTIVE_MODE = 0  # LiteGraph node modes: 0 always, 2 never (muted), 4 bypass


@dataclasses.dataclass
class Report:
    """problems: what makes the workflow invalid. missing_files: COMBO values naming files
    this server does not have (weights, input images), as ``'node N Type.input: value'``."""

    problems: list = dataclasses.field(default_factory=list)
    missing_files: list = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def input_specs(node_info: dict) -> dict:
    """Input name → ``[type, options]`` for the required then optional inputs, in their order."""
    specs = {}
    for section in ("required", "optional"):
        declared = node_info.get("input", {}).get(section, {})
        for name in node_info.get("input_order", {}).get(section, list(declared)):
            specs[name] = declared[name]
    return specs


def _options(spec) -> dict:
    return spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}


def combo_options(spec) -> list | None:
    """The option list of a COMBO input (legacy list form or ``"COMBO"`` + ``options``), else None."""
    if isinstance(spec[0], list):
        return spec[0]
    if spec[0] == "COMBO":
        return _options(spec).get("options", [])
    return None


def is_widget(spec) -> bool:
    """Whether the front end shows this input as a widget (and stores a value for it)."""
    kind = "COMBO" if isinstance(spec[0], list) else spec[0]
    return kind in WIDGET_TYPES and not _options(spec).get("forceInput", False)


def _extra_values(name: str, spec) -> int:
    """How many values the front end stores right after this widget's own, for the widgets
    it adds beside it (its rules, not ours): a "control after generate" widget
    (``"randomize"``, ``"fixed"``...) and an upload button."""
    options = _options(spec)
    control = options.get("control_after_generate")
    if spec[0] == "INT":
        return int(name in SEED_NAMES if control is None else bool(control))
    if combo_options(spec) is None:
        return 0
    return int(bool(control)) + int(any(options.get(option) for option in UPLOAD_OPTIONS))


def widget_values(node: dict, node_info: dict) -> dict:
    """Widget input name → value from the node's ``widgets_values`` (list or dict form).

    Raises ValueError when the number of stored values does not match the class's widgets.
    """
    stored = node.get("widgets_values") or []
    widgets = [(name, spec) for name, spec in input_specs(node_info).items() if is_widget(spec)]
    if isinstance(stored, dict):
        return {name: stored[name] for name, _ in widgets if name in stored}
    values, position = {}, 0
    for name, spec in widgets:
        if position >= len(stored):
            raise ValueError(f"{len(stored)} widget values, but the widgets from {name!r} on have none")
        values[name] = stored[position]
        position += 1 + _extra_values(name, spec)
    if position != len(stored):
        raise ValueError(f"{len(stored)} widget values for {position} widget slots ({', '.join(values)})")
    return values


def _check_value(name: str, spec, value) -> str | None:
    """Why ``value`` is not acceptable for the widget input ``name``, or None."""
    options = combo_options(spec)
    if options is not None:
        return None if value in options else f"{name}: {value!r} is not one of {options}"
    kind, limits = spec[0], _options(spec)
    if kind in ("INT", "FLOAT"):
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not numeric or (kind == "INT" and value != int(value)):
            return f"{name}: {value!r} is not an {kind}"
        if "min" in limits and value < limits["min"]:
            return f"{name}: {value} is below its minimum {limits['min']}"
        if "max" in limits and value > limits["max"]:
            return f"{name}: {value} is above its maximum {limits['max']}"
    if kind == "BOOLEAN" and not isinstance(value, bool):
        return f"{name}: {value!r} is not a BOOLEAN"
    if kind == "STRING" and not isinstance(value, str):
        return f"{name}: {value!r} is not a STRING"
    return None


def _types_match(output_type: str, input_spec) -> bool:
    input_type = "COMBO" if isinstance(input_spec[0], list) else input_spec[0]
    if "*" in (output_type, input_type):
        return True
    return bool(set(output_type.split(",")) & set(input_type.split(",")))


def _check_node(node: dict, info: dict, report: Report) -> None:
    label = f"node {node['id']} {node['type']}"
    specs = input_specs(info)
    linked = set()
    for socket in node.get("inputs") or []:
        if socket["name"] not in specs:
            report.problems.append(f"{label}: no input named {socket['name']!r}")
        elif socket.get("link") is not None:
            linked.add(socket["name"])
    if node.get("mode", ACTIVE_MODE) == ACTIVE_MODE:
        for name in info.get("input", {}).get("required", {}):
            if not is_widget(specs[name]) and name not in linked:
                report.problems.append(f"{label}: required input {name!r} is not connected")
    try:
        values = widget_values(node, info)
    except ValueError as error:
        report.problems.append(f"{label}: {error}")
        return
    for name, value in values.items():
        if name in linked:
            continue  # a linked widget takes its value from the link
        reason = _check_value(name, specs[name], value)
        if reason is None:
            continue
        if combo_options(specs[name]) is not None and str(value).lower().endswith(FILE_SUFFIXES):
            report.missing_files.append(f"{label}.{name}: {value}")
        else:
            report.problems.append(f"{label}: {reason}")


def link_fields(link) -> tuple:
    """(id, origin_id, origin_slot, target_id, target_slot) of a list- or dict-form link."""
    if isinstance(link, dict):
        return tuple(link[key] for key in ("id", "origin_id", "origin_slot", "target_id", "target_slot"))
    return tuple(link[:5])


def _check_link(link, nodes: dict, object_info: dict, report: Report) -> None:
    link_id, origin_id, origin_slot, target_id, target_slot = link_fields(link)
    origin, target = nodes.get(origin_id), nodes.get(target_id)
    if origin is None or target is None:
        report.problems.append(f"link {link_id}: joins missing node {origin_id if origin is None else target_id}")
        return
    if origin["type"] not in object_info or target["type"] not in object_info:
        return  # front-end-only node (or an unknown type, reported on the node)
    outputs = object_info[origin["type"]]["output"]
    sockets = target.get("inputs") or []
    if not 0 <= origin_slot < len(outputs) or not 0 <= target_slot < len(sockets):
        report.problems.append(f"link {link_id}: slot out of range ({origin['type']} → {target['type']})")
        return
    name = sockets[target_slot]["name"]
    spec = input_specs(object_info[target["type"]]).get(name)
    if spec is not None and not _types_match(outputs[origin_slot], spec):
        report.problems.append(f"link {link_id}: {origin['type']} output {outputs[origin_slot]} does not fit "
                               f"{target['type']}.{name}")


def validate(workflow: dict, object_info: dict) -> Report:
    """Check every node and link of a UI-format workflow (see the module docstring)."""
    report = Report()
    nodes = {node["id"]: node for node in workflow.get("nodes", [])}
    for node in nodes.values():
        info = object_info.get(node["type"])
        if info is not None:
            _check_node(node, info, report)
        elif node["type"] not in UI_ONLY_TYPES:
            report.problems.append(f"node {node['id']}: unknown node type {node['type']!r}")
    for link in workflow.get("links", []):
        _check_link(link, nodes, object_info, report)
    return report
