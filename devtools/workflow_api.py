"""Turn a UI-format (LiteGraph) workflow into the API format that ``/prompt`` accepts.

    prompt = to_api(workflow, object_info)

Each active node becomes ``{"class_type", "inputs", "_meta": {"title"}}`` under its id;
widget values are named with the server's ``/object_info`` (devtools/workflow_validate.py),
and linked inputs become ``[origin_id, origin_slot]``. Front-end-only nodes (notes) and
muted nodes are left out. Bypassed nodes are not supported (ValueError).
"""

from .workflow_validate import ACTIVE_MODE, link_fields, widget_values

MUTED_MODE = 2


def to_api(workflow: dict, object_info: dict) -> dict:
    """The API-format prompt of ``workflow`` (raises ValueError for what it cannot convert)."""
    links = {fields[0]: fields for fields in map(link_fields, workflow.get("links", []))}
    prompt = {}
    for node in workflow.get("nodes", []):
        info = object_info.get(node["type"])
        if info is None or node.get("mode", ACTIVE_MODE) == MUTED_MODE:
            continue
        if node.get("mode", ACTIVE_MODE) != ACTIVE_MODE:
            raise ValueError(f"node {node['id']} {node['type']}: bypassed nodes are not supported")
        inputs = widget_values(node, info)
        for socket in node.get("inputs") or []:
            if socket.get("link") is not None:
                _, origin_id, origin_slot, _, _ = links[socket["link"]]
                inputs[socket["name"]] = [str(origin_id), origin_slot]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs,
                                   "_meta": {"title": node.get("title") or info.get("display_name", node["type"])}}
    return prompt
