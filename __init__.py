"""ComfyUI-GAG: Geometry-Aware Attention Guidance for ComfyUI.

ComfyUI imports this file as the custom-node package. It is also safe to import without
ComfyUI (e.g. to use ``gag_core``): the nodes are only registered when the host's
``comfy`` package is importable.
"""

import importlib.util

WEB_DIRECTORY = "./web"

if importlib.util.find_spec("comfy") is not None:
    from .nodes.registration import *  # noqa: F401,F403  (comfy_entrypoint or NODE_CLASS_MAPPINGS)
