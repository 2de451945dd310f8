"""ComfyUI-GAG: Geometry-Aware Attention Guidance for ComfyUI.

ComfyUI imports this file as the custom-node package. It is also safe to import without
ComfyUI (e.g. to use ``gag_core``) and as a bare module (pytest imports a rootdir's
``__init__.py`` that way when the checkout's folder name is not a valid package name):
the nodes are only registered inside a package and when the host's ``comfy`` is importable.
"""

import importlib.util

WEB_DIRECTORY = "./web"

if __package__ and importlib.util.find_spec("comfy") is not None:
    from .nodes.registration import *  # noqa: F401,F403  (comfy_entrypoint or NODE_CLASS_MAPPINGS)
