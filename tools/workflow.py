"""Workflow files in ComfyUI's UI format: build them, check them, turn them into API prompts.

The UI format is what the front end saves and loads by drag and drop: nodes with sockets and
``widgets_values`` (widget values in input order, plus the hidden "control after generate" value
after a seed), and links ``[id, from_node, from_slot, to_node, to_slot, type]``. The API format is
what ComfyUI executes: ``{node_id: {"class_type", "inputs"}}``. Both directions use the live node
registry (ComfyUI must be booted), exactly as the front end uses /object_info.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}

# Which model folder each loader node reads its file-name widget from.
LOADER_FOLDERS = {"RayUNETLoader": "diffusion_models", "UNETLoader": "diffusion_models", "CheckpointLoaderSimple": "checkpoints", "CLIPLoader": "text_encoders",
                  "DualCLIPLoader": "text_encoders", "VAELoader": "vae", "CLIPVisionLoader": "clip_vision",
                  "LoraLoaderModelOnly": "loras"}


def model_files(paths: list[Path]) -> dict[str, set[str]]:
    """Model folder -> the file names that the workflows' loader nodes name (what a user downloads)."""
    wanted: dict[str, set[str]] = {}
    for path in paths:
        for node in json.loads(Path(path).read_text())["nodes"]:
            folder = LOADER_FOLDERS.get(node["type"])
            for value in node.get("widgets_values") or []:
                if folder and isinstance(value, str) and value.endswith(".safetensors"):
                    wanted.setdefault(folder, set()).add(value)
    return wanted


def node_info(class_type: str) -> dict:
    """What /object_info says about a node: inputs (in order), outputs, display name."""
    import nodes

    cls = nodes.NODE_CLASS_MAPPINGS[class_type]
    if hasattr(cls, "GET_NODE_INFO_V1"):
        return cls.GET_NODE_INFO_V1()
    inputs = cls.INPUT_TYPES()
    return {
        "input": inputs,
        "input_order": {k: list(v) for k, v in inputs.items() if k in ("required", "optional")},
        "output": list(cls.RETURN_TYPES),
        "output_name": list(getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES),
        "display_name": nodes.NODE_DISPLAY_NAME_MAPPINGS.get(class_type, class_type),
    }


def ordered_inputs(info: dict) -> list[tuple[str, tuple]]:
    out = []
    for section in ("required", "optional"):
        specs = info["input"].get(section, {})
        for name in info.get("input_order", {}).get(section, list(specs)):
            out.append((name, specs[name]))
    return out


def input_type(spec: tuple) -> str:
    t = spec[0]
    return "COMBO" if isinstance(t, list) else t


def is_widget(spec: tuple) -> bool:
    """Whether the front end draws the input as a widget (a socket only when ``forceInput`` is set)."""
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return input_type(spec) in WIDGET_TYPES and not options.get("forceInput")


def widget_default(spec: tuple):
    default = spec[1].get("default") if len(spec) > 1 and isinstance(spec[1], dict) else None
    if default is None and input_type(spec) == "COMBO":
        options = spec[0] if isinstance(spec[0], list) else spec[1].get("options", [None])
        default = options[0] if options else None
    return default


def has_control_value(spec: tuple) -> bool:
    return len(spec) > 1 and isinstance(spec[1], dict) and bool(spec[1].get("control_after_generate"))


@dataclass
class NodeRef:
    id: int
    class_type: str


@dataclass
class WorkflowBuilder:
    """Lays out a workflow in the UI format from node types, widget values and connections."""

    nodes: list[dict] = field(default_factory=list)
    links: list[list] = field(default_factory=list)
    groups: list[dict] = field(default_factory=list)

    def add(self, class_type: str, widgets: dict | None = None, pos=(0, 0), title: str | None = None) -> NodeRef:
        info = node_info(class_type)
        widgets = dict(widgets or {})
        values, sockets = [], []
        for name, spec in ordered_inputs(info):
            if is_widget(spec):
                values.append(widgets.pop(name, widget_default(spec)))
                if has_control_value(spec):
                    values.append("fixed")
            else:
                sockets.append({"name": name, "type": input_type(spec), "link": None})
        if widgets:
            raise KeyError(f"{class_type} has no widget inputs {sorted(widgets)}")
        node = {
            "id": len(self.nodes) + 1, "type": class_type, "pos": list(pos), "size": [320, 60 + 26 * (len(values) + len(sockets))],
            "flags": {}, "order": len(self.nodes), "mode": 0, "inputs": sockets,
            "outputs": [{"name": n, "type": t, "links": [], "slot_index": i}
                        for i, (n, t) in enumerate(zip(info["output_name"], info["output"]))],
            "properties": {"Node name for S&R": class_type}, "widgets_values": values,
        }
        if title:
            node["title"] = title
        self.nodes.append(node)
        return NodeRef(node["id"], class_type)

    def connect(self, src: NodeRef, out_slot: int, dst: NodeRef, input_name: str) -> None:
        src_node, dst_node = self.nodes[src.id - 1], self.nodes[dst.id - 1]
        socket = next(s for s in dst_node["inputs"] if s["name"] == input_name)
        link_type = src_node["outputs"][out_slot]["type"]
        link_id = len(self.links) + 1
        socket["link"] = link_id
        src_node["outputs"][out_slot]["links"].append(link_id)
        self.links.append([link_id, src.id, out_slot, dst.id, dst_node["inputs"].index(socket), link_type])

    def stack_columns(self, gap: int = 30) -> None:
        """Nodes placed in one column (the same x) are moved down until none covers the one above."""
        columns: dict[int, list[dict]] = {}
        for node in self.nodes:
            columns.setdefault(node["pos"][0], []).append(node)
        for column in columns.values():
            column.sort(key=lambda n: n["pos"][1])
            for above, below in zip(column, column[1:]):
                below["pos"][1] = max(below["pos"][1], above["pos"][1] + above["size"][1] + gap)

    def to_ui(self, note: str | None = None) -> dict:
        self.stack_columns()
        nodes = list(self.nodes)
        if note:
            nodes.append({"id": len(nodes) + 1, "type": "Note", "pos": [0, -220], "size": [520, 180], "flags": {},
                          "order": len(nodes), "mode": 0, "inputs": [], "outputs": [], "properties": {},
                          "widgets_values": [note]})
        return {"last_node_id": len(nodes), "last_link_id": len(self.links), "nodes": nodes, "links": self.links,
                "groups": self.groups, "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4}


FRONTEND_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}


def ui_to_api(workflow: dict) -> dict:
    """Convert a UI-format workflow into the API prompt ComfyUI executes (as the front end does)."""
    links = {l[0]: l for l in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        if node["type"] in FRONTEND_ONLY or node.get("mode", 0) in (2, 4):  # notes; muted or bypassed nodes
            continue
        info = node_info(node["type"])
        linked = {s["name"]: s["link"] for s in node.get("inputs", []) if s.get("link") is not None}
        values = list(node.get("widgets_values", []))
        inputs, i = {}, 0
        for name, spec in ordered_inputs(info):
            if is_widget(spec):
                # a widget added after the file was saved keeps its default, as in the front end
                value = values[i] if i < len(values) else widget_default(spec)
                i += 1 + has_control_value(spec)
                if name not in linked:
                    inputs[name] = value
            if name in linked:
                link = links[linked[name]]
                inputs[name] = [str(link[1]), link[2]]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


def check_links(workflow: dict) -> list[str]:
    """Problems a user would see on load: unknown nodes, links between incompatible types."""
    import nodes

    problems = []
    by_id = {n["id"]: n for n in workflow["nodes"]}
    for n in workflow["nodes"]:
        if n["type"] not in nodes.NODE_CLASS_MAPPINGS and n["type"] not in FRONTEND_ONLY:
            problems.append(f"node {n['id']}: unknown node type {n['type']}")
    for link_id, src, src_slot, dst, dst_slot, link_type in workflow["links"]:
        out_type = node_info(by_id[src]["type"])["output"][src_slot]
        socket = by_id[dst]["inputs"][dst_slot]
        spec = dict(ordered_inputs(node_info(by_id[dst]["type"])))[socket["name"]]
        in_type = input_type(spec)
        if not (out_type == in_type == link_type or "*" in (out_type, in_type)):
            problems.append(f"link {link_id}: {by_id[src]['type']} gives {out_type}, {by_id[dst]['type']}.{socket['name']} takes {in_type}")
    return problems
