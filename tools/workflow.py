"""Workflow files in ComfyUI's UI format: build them, check them, turn them into API prompts.

The UI format is what the front end saves and loads by drag and drop: nodes with sockets and
``widgets_values`` (widget values in input order, plus the hidden "control after generate" value
after a seed), and links ``[id, from_node, from_slot, to_node, to_slot, type]``. The API format is
what ComfyUI executes: ``{node_id: {"class_type", "inputs"}}``. Both directions use the live node
registry (ComfyUI must be booted), exactly as the front end uses /object_info.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

from tools.make_thumbnails import TITLE_H, node_box

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
GAP = 30  # canvas units kept free above and below the boxes of nodes the builder places
SIDE_GAP = 10  # and beside them (ComfyUI's templates put columns about this close)


def model_files(paths: list[Path]) -> dict[str, set[str]]:
    """Model folder -> the file names that the workflows' loader nodes download (their ``models`` entries,
    as in ComfyUI's templates: name, url and the folder the loader reads)."""
    wanted: dict[str, set[str]] = {}
    for path in paths:
        for node in json.loads(Path(path).read_text())["nodes"]:
            for model in node.get("properties", {}).get("models", []):
                wanted.setdefault(model["directory"], set()).add(model["name"])
    return wanted


def input_images(paths: list[Path]) -> set[str]:
    """The images that the workflows' LoadImage nodes name (a user puts their own in ComfyUI's input folder)."""
    return {node["widgets_values"][0] for path in paths for node in json.loads(Path(path).read_text())["nodes"]
            if node["type"] == "LoadImage"}


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


def widget_names(class_type: str) -> list[str]:
    """Names of a node's ``widgets_values`` in order (a seed's control value is named "<seed> control")."""
    names = []
    for name, spec in ordered_inputs(node_info(class_type)):
        if is_widget(spec):
            names += [name, f"{name} control"] if has_control_value(spec) else [name]
    return names


@dataclass
class NodeRef:
    id: int
    class_type: str


@dataclass
class WorkflowBuilder:
    """Builds a workflow in the UI format, from nothing or from a template: add and remove nodes,
    connect sockets, place nodes where their boxes overlap none."""

    nodes: list[dict] = field(default_factory=list)
    links: list[list] = field(default_factory=list)
    groups: list[dict] = field(default_factory=list)
    rest: dict = field(default_factory=dict)  # a template's other keys (config, extra, version...)

    @classmethod
    def from_template(cls, template: dict) -> "WorkflowBuilder":
        rest = copy.deepcopy(template)
        rest.pop("id", None)  # the template's own workflow id: several workflows here come from one template
        return cls(rest.pop("nodes"), rest.pop("links"), rest.pop("groups", []), rest)

    def _last_node_id(self) -> int:  # a template's count may be past its nodes' ids: new ids never reuse one
        return max([n["id"] for n in self.nodes] + [self.rest.get("last_node_id", 0)])

    def _last_link_id(self) -> int:
        return max([l[0] for l in self.links] + [self.rest.get("last_link_id", 0)])

    def node(self, ref: NodeRef | int) -> dict:
        node_id = ref.id if isinstance(ref, NodeRef) else ref
        return next(n for n in self.nodes if n["id"] == node_id)

    def find(self, class_type: str) -> list[NodeRef]:
        return [NodeRef(n["id"], n["type"]) for n in self.nodes if n["type"] == class_type]

    def add(self, class_type: str, widgets: dict | None = None, pos=(0, 0), title: str | None = None,
            node_id: int | None = None, width: int = 320) -> NodeRef:
        """A node with these widget values (the others at their defaults), ``width`` wide, placed at pos or below it."""
        info = node_info(class_type)
        widgets = dict(widgets or {})
        values, sockets = [], []
        for name, spec in ordered_inputs(info):
            if is_widget(spec):
                values.append(widgets.pop(name, widget_default(spec)))
                if has_control_value(spec):
                    values.append(widgets.pop(f"{name} control", "fixed"))
            else:
                sockets.append({"name": name, "type": input_type(spec), "link": None})
        if widgets:
            raise KeyError(f"{class_type} has no widget inputs {sorted(widgets)}")
        node_id = node_id or self._last_node_id() + 1
        node = {
            "id": node_id, "type": class_type, "pos": list(pos), "size": [width, 60 + 26 * (len(values) + len(sockets))],
            "flags": {}, "order": len(self.nodes), "mode": 0, "inputs": sockets,
            "outputs": [{"name": n, "type": t, "links": [], "slot_index": i}
                        for i, (n, t) in enumerate(zip(info["output_name"], info["output"]))],
            "properties": {"Node name for S&R": class_type}, "widgets_values": values,
        }
        if title:
            node["title"] = title
        self.nodes.append(node)
        self.place(NodeRef(node_id, class_type), *pos)
        return NodeRef(node_id, class_type)

    def remove(self, ref: NodeRef | int) -> None:
        node = self.node(ref)
        for link in [l for l in self.links if node["id"] in (l[1], l[3])]:
            self._unlink(link)
        self.nodes.remove(node)

    def _unlink(self, link: list) -> None:
        self.links.remove(link)
        for node in self.nodes:
            for socket in node.get("inputs", []):
                if socket.get("link") == link[0]:
                    socket["link"] = None
            for out in node.get("outputs", []):
                if link[0] in (out.get("links") or []):
                    out["links"].remove(link[0])

    def source(self, dst: NodeRef, input_name: str) -> tuple[NodeRef, int]:
        """The node and output slot that feed ``dst``'s input."""
        link_id = next(s["link"] for s in self.node(dst)["inputs"] if s["name"] == input_name)
        link = next(l for l in self.links if l[0] == link_id)
        return NodeRef(link[1], self.node(link[1])["type"]), link[2]

    def connect(self, src: NodeRef, out_slot: int, dst: NodeRef, input_name: str) -> None:
        src_node, dst_node = self.node(src), self.node(dst)
        socket = next(s for s in dst_node["inputs"] if s["name"] == input_name)
        if socket.get("link") is not None:
            self._unlink(next(l for l in self.links if l[0] == socket["link"]))
        link_type = src_node["outputs"][out_slot]["type"]
        link_id = self._last_link_id() + 1
        socket["link"] = link_id
        src_node["outputs"][out_slot]["links"] = (src_node["outputs"][out_slot].get("links") or []) + [link_id]
        self.links.append([link_id, src.id, out_slot, dst.id, dst_node["inputs"].index(socket), link_type])

    def place(self, ref: NodeRef, x: float, y: float) -> None:
        """Put the node at (x, y), or below it where its box (title bar included) keeps clear of every other."""
        node = self.node(ref)
        node["pos"] = [x, y]
        while True:
            box = node_box(node)
            hit = [b for b in (node_box(n) for n in self.nodes if n is not node)
                   if b[0] < box[2] + SIDE_GAP and box[0] < b[2] + SIDE_GAP and b[1] < box[3] + GAP and box[1] < b[3] + GAP]
            if not hit:
                return
            node["pos"][1] = max(b[3] for b in hit) + GAP + TITLE_H

    def replace(self, old: NodeRef, class_type: str, widgets: dict | None = None,
                renamed: dict[str, str] | None = None) -> NodeRef:
        """A node of another type in the old one's place (same id and properties): its settings carried
        by input name (``renamed``: old name -> new), its links by input name and output type."""
        node = self.node(old)
        carried = {(renamed or {}).get(k, k): v for k, v in zip(widget_names(old.class_type), node["widgets_values"])}
        carried = {k: v for k, v in carried.items() if k in widget_names(class_type)} | (widgets or {})
        links = [(l, self.node(l[3])["inputs"][l[4]]["name"]) for l in self.links if old.id in (l[1], l[3])]
        self.remove(old)
        new = self.add(class_type, carried, pos=node["pos"], node_id=old.id)
        new_node = self.node(new)
        new_node["size"][0] = node["size"][0]  # as wide as the template drew it: it may then keep its place
        self.place(new, *node["pos"])
        for (_, src, slot, dst, _, kind), name in links:
            if dst == old.id and any(s["name"] == name for s in new_node["inputs"]):
                self.connect(NodeRef(src, self.node(src)["type"]), slot, new, name)
            elif src == old.id:
                out = next(i for i, o in enumerate(new_node["outputs"]) if o["type"] == kind)
                self.connect(new, out, NodeRef(dst, self.node(dst)["type"]), name)
        new_node["properties"] = node["properties"] | new_node["properties"]
        return new

    def _within(self, title: str) -> tuple[list[dict], list[dict]]:
        """The nodes and groups (itself included) that lie inside the group of this title."""
        gx, gy, gw, gh = next(g for g in self.groups if g["title"] == title)["bounding"]

        def inside(box) -> bool:
            return gx <= box[0] and box[2] <= gx + gw and gy <= box[1] and box[3] <= gy + gh

        return ([n for n in self.nodes if inside(node_box(n))],
                [g for g in self.groups if inside((*g["bounding"][:2], g["bounding"][0] + g["bounding"][2],
                                                   g["bounding"][1] + g["bounding"][3]))])

    def drop_group(self, title: str) -> float:
        """Remove the group of this title with all inside it; returns where its top was."""
        nodes, groups = self._within(title)
        top = next(g for g in groups if g["title"] == title)["bounding"][1]
        for node in nodes:
            self.remove(node["id"])
        self.groups = [g for g in self.groups if g not in groups]
        return top

    def enable_group(self, title: str, top: float | None = None) -> None:
        """Un-bypass the nodes of the group of this title; with ``top``, move the group and its content up there."""
        nodes, groups = self._within(title)
        dy = 0 if top is None else top - next(g for g in groups if g["title"] == title)["bounding"][1]
        for node in nodes:
            node["mode"], node["pos"][1] = 0, node["pos"][1] + dy
        for group in groups:
            group["bounding"][1] += dy

    def make_room(self, x: float, width: float) -> None:
        """Move every node and group from x on right by width (a free column at x); groups across x widen."""
        for node in self.nodes:
            if node["pos"][0] >= x:
                node["pos"][0] += width
        for group in self.groups:
            if group["bounding"][0] >= x:
                group["bounding"][0] += width
            elif group["bounding"][0] + group["bounding"][2] > x:
                group["bounding"][2] += width

    def to_ui(self, note: str | None = None) -> dict:
        if note:
            boxes = [node_box(n) for n in self.nodes]
            top = min([b[1] for b in boxes] + [g["bounding"][1] for g in self.groups])
            self.nodes.append({"id": self._last_node_id() + 1, "type": "Note", "pos": [min(b[0] for b in boxes), top - GAP - 180],
                               "size": [520, 180], "flags": {}, "order": len(self.nodes), "mode": 0, "inputs": [],
                               "outputs": [], "properties": {}, "widgets_values": [note]})
        return self.rest | {"last_node_id": self._last_node_id(), "last_link_id": self._last_link_id(), "nodes": self.nodes,
                            "links": self.links, "groups": self.groups, "config": self.rest.get("config", {}),
                            "extra": self.rest.get("extra", {"ds": {"scale": 0.8, "offset": [0, 0]}}),
                            "version": self.rest.get("version", 0.4)}


FRONTEND_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}


def ui_to_api(workflow: dict) -> dict:
    """Convert a UI-format workflow into the API prompt ComfyUI executes (as the front end does)."""
    links = {l[0]: l for l in workflow["links"]}
    by_id = {n["id"]: n for n in workflow["nodes"]}

    def skipped(node: dict) -> bool:  # notes; muted (2) or bypassed (4) nodes
        return node["type"] in FRONTEND_ONLY or node.get("mode", 0) in (2, 4)

    def source(link: list) -> list | None:
        """Where an input really comes from: through bypassed nodes (their first linked input of the
        link's type passes on), nowhere from muted ones, as the front end does."""
        while by_id[link[1]].get("mode", 0) == 4:
            through = [s["link"] for s in by_id[link[1]].get("inputs", []) if s.get("type") == link[5] and s.get("link")]
            if not through:
                return None
            link = links[through[0]]
        return None if skipped(by_id[link[1]]) else [str(link[1]), link[2]]

    import nodes

    prompt = {}
    for node in workflow["nodes"]:
        if skipped(node):
            continue
        info = node_info(node["type"])
        linked = {s["name"]: s["link"] for s in node.get("inputs", []) if s.get("link") is not None}
        values = list(node.get("widgets_values", []))
        migrate = getattr(nodes.NODE_CLASS_MAPPINGS[node["type"]], "saved_widget_values", None)
        if migrate is not None:  # a node whose widgets moved: what its web extension does on load
            values = migrate(values)
        inputs, i = {}, 0
        for name, spec in ordered_inputs(info):
            if is_widget(spec):
                # a widget added after the file was saved keeps its default, as in the front end
                value = values[i] if i < len(values) else widget_default(spec)
                i += 1 + has_control_value(spec)
                if name not in linked:
                    inputs[name] = value
            if name in linked and source(links[linked[name]]):
                inputs[name] = source(links[linked[name]])
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
