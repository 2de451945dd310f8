"""Register the nodes of definitions.NODES with the host: V3 ``ComfyExtension`` when
``comfy_api.latest`` exists, else V1 ``NODE_CLASS_MAPPINGS`` (older ComfyUI).
Both are generated from the same specs.

A spec's ``validate`` becomes the host's queue-time check (V3 ``validate_inputs``, V1
``VALIDATE_INPUTS``): ``/prompt`` then answers 400 with its message. Widget labels go
out as input ``display_name``; search aliases as ``search_aliases`` (V3 hosts whose Schema
has the field, e.g. 0.12.1) or ``SEARCH_ALIASES`` (V1); older hosts ignore both.
"""

import dataclasses
import inspect

from .definitions import NODES, Socket, Widget

try:
    from comfy_api.latest import ComfyExtension, io
except ImportError:  # host without the V3 node API
    io = None
try:
    from comfy_execution.validation import validate_node_input
except ImportError:  # hosts before comfy_execution.validation: same type, or the any type
    def validate_node_input(received_type, input_type):
        return received_type == input_type or "*" in (received_type, input_type)


def _v3_socket_type(type_name):
    builtin = {"MODEL": io.Model, "LATENT": io.Latent, "IMAGE": io.Image, "STRING": io.String}
    return builtin.get(type_name) or io.Custom(type_name)


def _v3_input(item):
    if isinstance(item, Socket):
        return _v3_socket_type(item.type).Input(item.name, optional=item.optional, tooltip=item.tooltip)
    common = dict(default=item.default, tooltip=item.tooltip, display_name=item.label)
    if item.kind == "FLOAT":
        return io.Float.Input(item.name, min=item.min, max=item.max, step=item.step, **common)
    if item.kind == "BOOLEAN":
        return io.Boolean.Input(item.name, label_on=item.label_on, label_off=item.label_off, **common)
    if item.kind == "COMBO":
        return io.Combo.Input(item.name, options=list(item.options), **common)
    return io.String.Input(item.name, multiline=False, **common)


def _queue_time_check(spec):
    """``spec.validate`` as the classmethod the host calls before it queues a prompt.

    The host reads the method's parameter names: it passes exactly those inputs, skips its
    own min/max/option checks for them, and, since ``input_types`` is among them, hands over
    the output types of linked inputs (whose values are not known yet) instead of None. So
    the method carries ``spec.validate``'s parameters, leaves linked inputs to the run, and
    checks their link types itself with the host's own rule (the host skips that check when
    a node takes ``input_types``)."""
    declared = {item.name: item.type if isinstance(item, Socket) else item.kind for item in spec.inputs}

    def check(cls, input_types=None, **inputs):
        linked = input_types or {}
        for name, received in linked.items():
            if not validate_node_input(received, declared[name]):
                return f"{name}: a {received} output cannot feed this {declared[name]} input"
        return spec.validate(**{name: value for name, value in inputs.items() if name not in linked})

    positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
    parameters = [inspect.Parameter("cls", positional), inspect.Parameter("input_types", positional, default=None)]
    parameters += [parameter.replace(kind=positional)
                   for parameter in inspect.signature(spec.validate).parameters.values()]
    check.__signature__ = inspect.Signature(parameters)
    return classmethod(check)


def _v3_schema_extras(spec) -> dict:
    """The optional Schema fields this host's io.Schema knows (0.3.75 has no search_aliases)."""
    fields = {field.name for field in dataclasses.fields(io.Schema)}
    return {"search_aliases": list(spec.search_aliases)} if spec.search_aliases and "search_aliases" in fields else {}


def _v3_node(spec):
    def define_schema(cls):
        return io.Schema(
            node_id=spec.node_id, display_name=spec.display_name, category=spec.category,
            description=spec.description, inputs=[_v3_input(i) for i in spec.inputs],
            outputs=[_v3_socket_type(o.type).Output(display_name=o.name, tooltip=o.tooltip) for o in spec.outputs],
            **_v3_schema_extras(spec))

    def execute(cls, **inputs):
        return io.NodeOutput(*spec.run(**inputs))

    methods = {"define_schema": classmethod(define_schema), "execute": classmethod(execute)}
    if spec.validate is not None:
        methods["validate_inputs"] = _queue_time_check(spec)
    return type(spec.node_id, (io.ComfyNode,), methods)


def _v1_input(item):
    if isinstance(item, Socket):
        return (item.type, {"tooltip": item.tooltip})
    options = {"default": item.default, "tooltip": item.tooltip}
    if item.label:
        options["display_name"] = item.label
    if item.kind == "FLOAT":
        options.update(min=item.min, max=item.max, step=item.step)
    elif item.kind == "BOOLEAN":
        options.update(label_on=item.label_on, label_off=item.label_off)
    return (list(item.options) if item.kind == "COMBO" else item.kind, options)


def _v1_node(spec):
    def input_types(cls):
        required = {i.name: _v1_input(i) for i in spec.inputs if isinstance(i, Widget) or not i.optional}
        optional = {i.name: _v1_input(i) for i in spec.inputs if isinstance(i, Socket) and i.optional}
        return {"required": required, **({"optional": optional} if optional else {})}

    def execute(self, **inputs):
        return spec.run(**inputs)

    attributes = {
        "INPUT_TYPES": classmethod(input_types), "FUNCTION": "execute", "CATEGORY": spec.category,
        "DESCRIPTION": spec.description, "RETURN_TYPES": tuple(o.type for o in spec.outputs),
        "RETURN_NAMES": tuple(o.name for o in spec.outputs),
        "OUTPUT_TOOLTIPS": tuple(o.tooltip for o in spec.outputs), "SEARCH_ALIASES": list(spec.search_aliases),
        "execute": execute}
    if spec.validate is not None:
        attributes["VALIDATE_INPUTS"] = _queue_time_check(spec)
    return type(spec.node_id, (), attributes)


if io is not None:
    NODE_CLASSES = [_v3_node(spec) for spec in NODES]

    class GAGExtension(ComfyExtension):
        async def get_node_list(self) -> list[type[io.ComfyNode]]:
            return NODE_CLASSES

    async def comfy_entrypoint() -> GAGExtension:
        return GAGExtension()

    __all__ = ["comfy_entrypoint"]
else:
    NODE_CLASS_MAPPINGS = {spec.node_id: _v1_node(spec) for spec in NODES}
    NODE_DISPLAY_NAME_MAPPINGS = {spec.node_id: spec.display_name for spec in NODES}
    __all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
