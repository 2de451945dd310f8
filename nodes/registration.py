"""Register the nodes with the host: V3 ``ComfyExtension`` when ``comfy_api.latest`` exists,
else V1 ``NODE_CLASS_MAPPINGS`` (older ComfyUI)."""

from .apply import apply_gag
from .definitions import APPLY_NODE, SETTINGS_NODE, SETTINGS_TYPE, SETTINGS_WIDGETS, settings_from_widgets

try:
    from comfy_api.latest import ComfyExtension, io
except ImportError:  # host without the V3 node API
    io = None


if io is not None:
    SettingsSocket = io.Custom(SETTINGS_TYPE)

    def _v3_widget(widget):
        common = dict(default=widget.default, tooltip=widget.tooltip)
        if widget.kind == "FLOAT":
            return io.Float.Input(widget.name, min=widget.min, max=widget.max, step=widget.step, **common)
        if widget.kind == "BOOLEAN":
            return io.Boolean.Input(widget.name, label_on=widget.label_on, label_off=widget.label_off, **common)
        if widget.kind == "COMBO":
            return io.Combo.Input(widget.name, options=list(widget.options), **common)
        return io.String.Input(widget.name, multiline=False, **common)

    class GAGSettingsNode(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(
                node_id=SETTINGS_NODE["node_id"], display_name=SETTINGS_NODE["display_name"],
                category=SETTINGS_NODE["category"], description=SETTINGS_NODE["description"],
                inputs=[_v3_widget(w) for w in SETTINGS_WIDGETS],
                outputs=[SettingsSocket.Output(tooltip=SETTINGS_NODE["output_tooltip"])])

        @classmethod
        def execute(cls, **widgets) -> io.NodeOutput:
            return io.NodeOutput(settings_from_widgets(**widgets))

    class ApplyGAGNode(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(
                node_id=APPLY_NODE["node_id"], display_name=APPLY_NODE["display_name"],
                category=APPLY_NODE["category"], description=APPLY_NODE["description"],
                inputs=[io.Model.Input("model", tooltip=APPLY_NODE["model_tooltip"]),
                        SettingsSocket.Input("settings", optional=True, tooltip=APPLY_NODE["settings_tooltip"])],
                outputs=[io.Model.Output(tooltip=APPLY_NODE["output_tooltip"])])

        @classmethod
        def execute(cls, model, settings=None) -> io.NodeOutput:
            return io.NodeOutput(apply_gag(model, settings))

    class GAGExtension(ComfyExtension):
        async def get_node_list(self) -> list[type[io.ComfyNode]]:
            return [GAGSettingsNode, ApplyGAGNode]

    async def comfy_entrypoint() -> GAGExtension:
        return GAGExtension()

    __all__ = ["comfy_entrypoint"]

else:
    def _v1_widget(widget):
        options = {"default": widget.default, "tooltip": widget.tooltip}
        if widget.kind == "FLOAT":
            options.update(min=widget.min, max=widget.max, step=widget.step)
            return ("FLOAT", options)
        if widget.kind == "BOOLEAN":
            options.update(label_on=widget.label_on, label_off=widget.label_off)
            return ("BOOLEAN", options)
        if widget.kind == "COMBO":
            return (list(widget.options), options)
        return ("STRING", options)

    class GAGSettingsNode:
        CATEGORY = SETTINGS_NODE["category"]
        DESCRIPTION = SETTINGS_NODE["description"]
        RETURN_TYPES = (SETTINGS_TYPE,)
        OUTPUT_TOOLTIPS = (SETTINGS_NODE["output_tooltip"],)
        FUNCTION = "execute"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {w.name: _v1_widget(w) for w in SETTINGS_WIDGETS}}

        def execute(self, **widgets):
            return (settings_from_widgets(**widgets),)

    class ApplyGAGNode:
        CATEGORY = APPLY_NODE["category"]
        DESCRIPTION = APPLY_NODE["description"]
        RETURN_TYPES = ("MODEL",)
        OUTPUT_TOOLTIPS = (APPLY_NODE["output_tooltip"],)
        FUNCTION = "execute"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"model": ("MODEL", {"tooltip": APPLY_NODE["model_tooltip"]})},
                    "optional": {"settings": (SETTINGS_TYPE, {"tooltip": APPLY_NODE["settings_tooltip"]})}}

        def execute(self, model, settings=None):
            return (apply_gag(model, settings),)

    NODE_CLASS_MAPPINGS = {SETTINGS_NODE["node_id"]: GAGSettingsNode, APPLY_NODE["node_id"]: ApplyGAGNode}
    NODE_DISPLAY_NAME_MAPPINGS = {SETTINGS_NODE["node_id"]: SETTINGS_NODE["display_name"],
                                  APPLY_NODE["node_id"]: APPLY_NODE["display_name"]}
    __all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
