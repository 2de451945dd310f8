"""Register the nodes of definitions.NODES with the host: V3 ``ComfyExtension`` when
``comfy_api.latest`` exists, else V1 ``NODE_CLASS_MAPPINGS`` (older ComfyUI).
Both are generated from the same specs."""

from .definitions import NODES, Socket, Widget

try:
    from comfy_api.latest import ComfyExtension, io
except ImportError:  # host without the V3 node API
    io = None


def _v3_socket_type(type_name):
    builtin = {"MODEL": io.Model, "LATENT": io.Latent, "IMAGE": io.Image, "STRING": io.String}
    return builtin.get(type_name) or io.Custom(type_name)


def _v3_input(item):
    if isinstance(item, Socket):
        return _v3_socket_type(item.type).Input(item.name, optional=item.optional, tooltip=item.tooltip)
    common = dict(default=item.default, tooltip=item.tooltip)
    if item.kind == "FLOAT":
        return io.Float.Input(item.name, min=item.min, max=item.max, step=item.step, **common)
    if item.kind == "BOOLEAN":
        return io.Boolean.Input(item.name, label_on=item.label_on, label_off=item.label_off, **common)
    if item.kind == "COMBO":
        return io.Combo.Input(item.name, options=list(item.options), **common)
    return io.String.Input(item.name, multiline=False, **common)


def _v3_node(spec):
    def define_schema(cls):
        return io.Schema(
            node_id=spec.node_id, display_name=spec.display_name, category=spec.category,
            description=spec.description, inputs=[_v3_input(i) for i in spec.inputs],
            outputs=[_v3_socket_type(o.type).Output(display_name=o.name, tooltip=o.tooltip) for o in spec.outputs])

    def execute(cls, **inputs):
        return io.NodeOutput(*spec.run(**inputs))

    return type(spec.node_id, (io.ComfyNode,), {
        "define_schema": classmethod(define_schema), "execute": classmethod(execute)})


def _v1_input(item):
    if isinstance(item, Socket):
        return (item.type, {"tooltip": item.tooltip})
    options = {"default": item.default, "tooltip": item.tooltip}
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

    return type(spec.node_id, (), {
        "INPUT_TYPES": classmethod(input_types), "FUNCTION": "execute", "CATEGORY": spec.category,
        "DESCRIPTION": spec.description, "RETURN_TYPES": tuple(o.type for o in spec.outputs),
        "RETURN_NAMES": tuple(o.name for o in spec.outputs),
        "OUTPUT_TOOLTIPS": tuple(o.tooltip for o in spec.outputs), "execute": execute})


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
