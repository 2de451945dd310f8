"""ComfyUI side of the pack: settings validation, the nodes, the architecture table, and one
adapter per attention flavour (UNet cross-attention, DiT cross-attention, joint MMDiT attention)
mapping ComfyUI's tensors onto gag_core.

Imports ComfyUI (``comfy``) lazily or at module level only in the modules that need it, so
``options`` and ``architectures`` stay importable for documentation and tests.
"""
