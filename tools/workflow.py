"""Workflow files in ComfyUI's UI format: build them, check them, turn them into API prompts.

The UI format is what the front end saves and loads by drag and drop: nodes with sockets and
``widgets_values`` (widget values in input order, plus the hidden "control after generate" value
after a seed), and links ``[id, from_node, from_slot, to_node, to_slot, type]``. The API format is
what ComfyUI executes: ``{node_id: {"class_type", "inputs"}}``. Both directions use the live node
registry (ComfyUI must be booted), exactly as the front end uses /object_info.

Newer templates (ComfyUI 0.20.1's) put part of the graph in a *subgraph*: its definition (nodes,
links as objects ``{id, origin_id, origin_slot, target_id, target_slot, type}``, inputs and outputs)
lies in ``definitions.subgraphs``, and a node of the graph above it has the definition's id as its
type. Inside a definition, node -10 stands for the subgraph's inputs and -20 for its outputs. The
API prompt has no subgraphs: :func:`ui_to_api` expands them into flat nodes with the ids the front
end gives them, ``"<subgraph node id>:<inner node id>"``.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

from tools.make_thumbnails import TITLE_H, node_box

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
# Newer ComfyUI's dynamic inputs (comfy_api/latest/_io.py): a combo whose chosen option brings inputs of its
# own (named "<combo>.<input>"), an input that grows by sockets ("<name>.a", "<name>.b"...), a socket whose
# type is one of several.
DYNAMIC_COMBO, AUTOGROW, MATCH_TYPE = "COMFY_DYNAMICCOMBO_V3", "COMFY_AUTOGROW_V3", "COMFY_MATCHTYPE_V3"
SUBGRAPH_INPUT, SUBGRAPH_OUTPUT = -10, -20  # the node ids that stand for a subgraph's inputs and outputs
GAP = 30  # canvas units kept free above and below the boxes of nodes the builder places
SIDE_GAP = 10  # and beside them (ComfyUI's templates put columns about this close)


def subgraphs(workflow: dict) -> dict[str, dict]:
    """The workflow's subgraph definitions by id (the type of the nodes that use them)."""
    return {d["id"]: d for d in (workflow.get("definitions") or {}).get("subgraphs", [])}


def list_links(links: list) -> list[list]:
    """Links as lists ``[id, from_node, from_slot, to_node, to_slot, type]``, whether saved as lists (a
    workflow's top graph) or as objects (a subgraph definition)."""
    return [[l["id"], l["origin_id"], l["origin_slot"], l["target_id"], l["target_slot"], l.get("type")]
            if isinstance(l, dict) else list(l) for l in links or []]


def graphs(workflow: dict) -> dict[str | None, dict]:
    """The top graph (key None) and every subgraph definition (key: its id), each as {"nodes", "links" (lists)}."""
    out = {None: {"nodes": workflow["nodes"], "links": list_links(workflow["links"])}}
    for sub_id, definition in subgraphs(workflow).items():
        out[sub_id] = {"nodes": definition.get("nodes", []), "links": list_links(definition.get("links")),
                       "definition": definition}
    return out


def all_nodes(workflow: dict) -> list[dict]:
    """The nodes of the top graph and of every subgraph definition."""
    return [node for graph in graphs(workflow).values() for node in graph["nodes"]]


def model_files(paths: list[Path]) -> dict[str, set[str]]:
    """Model folder -> the file names that the workflows' loader nodes download (their ``models`` entries,
    as in ComfyUI's templates: name, url and the folder the loader reads)."""
    wanted: dict[str, set[str]] = {}
    for path in paths:
        for node in all_nodes(json.loads(Path(path).read_text())):
            for model in node.get("properties", {}).get("models", []):
                wanted.setdefault(model["directory"], set()).add(model["name"])
    return wanted


def input_images(paths: list[Path]) -> set[str]:
    """The images that the workflows' LoadImage nodes name (a user puts their own in ComfyUI's input folder)."""
    return {node["widgets_values"][0] for path in paths for node in all_nodes(json.loads(Path(path).read_text()))
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


def accepted_types(spec: tuple) -> str:
    """The types an input takes, comma-separated as ComfyUI writes unions ("*": any)."""
    if input_type(spec) == MATCH_TYPE:
        return spec[1]["template"].get("allowed_types") or "*"
    return input_type(spec)


def types_match(a: str, b: str) -> bool:
    """Whether a link of type ``a`` fits a socket of type ``b`` (either a union "X,Y" or "*"), as ComfyUI checks."""
    return "*" in (a, b) or bool(set(a.split(",")) & set(b.split(",")))


def is_widget(spec: tuple) -> bool:
    """Whether the front end draws the input as a widget (a socket only when ``forceInput`` is set)."""
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return (input_type(spec) in WIDGET_TYPES or input_type(spec) == DYNAMIC_COMBO) and not options.get("forceInput")


def widget_default(spec: tuple):
    default = spec[1].get("default") if len(spec) > 1 and isinstance(spec[1], dict) else None
    if default is None and input_type(spec) in ("COMBO", DYNAMIC_COMBO):
        options = spec[0] if isinstance(spec[0], list) else spec[1].get("options", [None])
        default = options[0] if options else None
        if isinstance(default, dict):  # a dynamic combo's option: its key
            default = default["key"]
    return default


def has_control_value(spec: tuple) -> bool:
    return len(spec) > 1 and isinstance(spec[1], dict) and bool(spec[1].get("control_after_generate"))


def layout(info: dict, values: list | None = None, sockets: set[str] | None = None) -> list[tuple[str, tuple]]:
    """A node's inputs in the order the front end lays them out, named as the API prompt names them.

    Plain inputs as :func:`ordered_inputs` gives them. A dynamic combo is followed by the inputs of the option
    that its value in ``values`` (the node's ``widgets_values``; its default without) selects, named
    "<combo>.<input>"; an autogrowing input gives the sockets "<name>.<n>" that the node has (``sockets``: the
    names of its input sockets), or its first ``min`` without."""
    out: list[tuple[str, tuple]] = []

    def walk(specs: list[tuple[str, tuple]], prefix: str, i: int) -> int:
        for name, spec in specs:
            full = prefix + name
            kind = input_type(spec)
            if kind == AUTOGROW:
                template = spec[1]["template"]
                section = next(s for s in template["input"].values() if s)
                inner = next(iter(section.values()))
                names = template.get("names") or [f"{template['prefix']}{k}" for k in range(template["max"])]
                grown = [n for n in names if f"{full}.{n}" in sockets] if sockets is not None else names[:template.get("min", 1)]
                i = walk([(n, inner) for n in grown], full + ".", i)
                continue
            out.append((full, spec))
            if not is_widget(spec):
                continue
            if kind == DYNAMIC_COMBO:
                key = values[i] if values is not None and i < len(values) else widget_default(spec)
                option = next((o for o in spec[1]["options"] if o["key"] == key), None)
                i = walk(ordered_inputs({"input": option["inputs"]}) if option else [], full + ".", i + 1)
            else:
                i += 1 + has_control_value(spec)
        return i

    walk(ordered_inputs(info), "", 0)
    return out


def node_layout(node: dict) -> list[tuple[str, tuple]]:
    """:func:`layout` of a workflow's node: its widget values choose the dynamic inputs, its sockets the grown ones."""
    values = node.get("widgets_values")
    return layout(node_info(node["type"]), values if isinstance(values, list) else None,
                  {s["name"] for s in node.get("inputs", [])})


def widget_names(class_type: str, values: list | None = None) -> list[str]:
    """Names of a node's ``widgets_values`` in order (a seed's control value is named "<seed> control"); with
    ``values``, a dynamic combo's inputs are those of the option it holds."""
    names = []
    for name, spec in layout(node_info(class_type), values):
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
    connect sockets, place nodes where their boxes overlap none.

    A template with subgraphs: :meth:`subgraph` gives a builder of one definition's graph (the same
    methods; links as lists while it builds). Node and link ids are unique across all the graphs, as the
    front end keeps them; :meth:`to_ui` of the top builder writes the definitions back."""

    nodes: list[dict] = field(default_factory=list)
    links: list[list] = field(default_factory=list)
    groups: list[dict] = field(default_factory=list)
    rest: dict = field(default_factory=dict)  # a template's other keys (config, extra, version...)
    top: "WorkflowBuilder | None" = None  # a subgraph's builder: the workflow's top builder
    inner: dict = field(default_factory=dict)  # the top builder: subgraph id -> its builder, once asked for

    @classmethod
    def from_template(cls, template: dict) -> "WorkflowBuilder":
        rest = copy.deepcopy(template)
        rest.pop("id", None)  # the template's own workflow id: several workflows here come from one template
        return cls(rest.pop("nodes"), rest.pop("links"), rest.pop("groups", []), rest)

    def subgraph(self, sub_id: str) -> "WorkflowBuilder":
        """The builder of a subgraph definition's graph (its inputs are node -10, its outputs node -20)."""
        top = self.top or self
        if sub_id not in top.inner:
            definition = subgraphs(top.rest)[sub_id]
            top.inner[sub_id] = WorkflowBuilder(definition["nodes"], list_links(definition.get("links")),
                                                definition.setdefault("groups", []), definition, top=top)
        return top.inner[sub_id]

    def subgraph_with(self, class_types: set[str]) -> "WorkflowBuilder":
        """This builder, or that of the subgraph whose graph holds enabled nodes of these types (the sampling)."""
        if any(n["type"] in class_types and n.get("mode", 0) == 0 for n in self.nodes):
            return self
        for sub_id, definition in subgraphs((self.top or self).rest).items():
            if any(n["type"] in class_types and n.get("mode", 0) == 0 for n in definition["nodes"]):
                return self.subgraph(sub_id)
        raise LookupError(f"no graph of the workflow holds an enabled {sorted(class_types)}")

    def _graphs(self) -> list[tuple[list[dict], list, dict]]:
        """(nodes, links, counters) of every graph of the workflow: the top one, then each subgraph definition."""
        top = self.top or self
        out = [(top.nodes, top.links, {"last_node_id": top.rest.get("last_node_id", 0),
                                       "last_link_id": top.rest.get("last_link_id", 0)})]
        for sub_id, definition in subgraphs(top.rest).items():
            state = definition.get("state", {})
            nodes, links = ((top.inner[sub_id].nodes, top.inner[sub_id].links) if sub_id in top.inner
                            else (definition["nodes"], list_links(definition.get("links"))))
            out.append((nodes, links, {"last_node_id": state.get("lastNodeId", 0),
                                       "last_link_id": state.get("lastLinkId", 0)}))
        return out

    def _last_node_id(self) -> int:  # a template's count may be past its nodes' ids: new ids never reuse one
        return max(max([n["id"] for n in nodes] + [counts["last_node_id"]]) for nodes, _, counts in self._graphs())

    def _last_link_id(self) -> int:
        return max(max([l[0] for l in links] + [counts["last_link_id"]]) for _, links, counts in self._graphs())

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
        for name, spec in layout(info):  # a dynamic combo: the inputs of its default option
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
        for end in (self.rest.get("inputs", []) if self.top else []) + (self.rest.get("outputs", []) if self.top else []):
            if link[0] in end.get("linkIds", []):  # a subgraph's input or output
                end["linkIds"].remove(link[0])
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
        carried = {(renamed or {}).get(k, k): v
                   for k, v in zip(widget_names(old.class_type, node["widgets_values"]), node["widgets_values"])}
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
        for end in ("inputNode", "outputNode"):  # a subgraph's inputs and outputs
            bounding = (self.rest.get(end) or {}).get("bounding") if self.top else None
            if bounding and bounding[0] >= x:
                bounding[0] += width
        for group in self.groups:
            if group["bounding"][0] >= x:
                group["bounding"][0] += width
            elif group["bounding"][0] + group["bounding"][2] > x:
                group["bounding"][2] += width

    def to_ui(self, note: str | None = None) -> dict:
        """The workflow (call it on the top builder): with a note above the top graph's nodes."""
        if self.top is not None:
            raise ValueError("to_ui is the top builder's: a subgraph's graph is written back into it")
        if note:
            boxes = [node_box(n) for n in self.nodes]
            top = min([b[1] for b in boxes] + [g["bounding"][1] for g in self.groups])
            self.nodes.append({"id": self._last_node_id() + 1, "type": "Note", "pos": [min(b[0] for b in boxes), top - GAP - 180],
                               "size": [520, 180], "flags": {}, "order": len(self.nodes), "mode": 0, "inputs": [],
                               "outputs": [], "properties": {}, "widgets_values": [note]})
        for sub_id, inner in self.inner.items():  # each subgraph's graph back into its definition, links as objects
            saved = {l["id"]: l for l in subgraphs(self.rest)[sub_id].get("links") or [] if isinstance(l, dict)}
            inner.rest["nodes"], inner.rest["groups"] = inner.nodes, inner.groups
            inner.rest["links"] = [saved.get(l[0], {}) | {"id": l[0], "origin_id": l[1], "origin_slot": l[2], "target_id": l[3],
                                                          "target_slot": l[4], "type": l[5]} for l in inner.links]
        last_node, last_link = self._last_node_id(), self._last_link_id()
        for definition in subgraphs(self.rest).values():
            if "state" in definition:  # the front end keeps one count for all the graphs
                definition["state"] |= {"lastNodeId": last_node, "lastLinkId": last_link}
        return self.rest | {"last_node_id": last_node, "last_link_id": last_link, "nodes": self.nodes,
                            "links": self.links, "groups": self.groups, "config": self.rest.get("config", {}),
                            "extra": self.rest.get("extra", {"ds": {"scale": 0.8, "offset": [0, 0]}}),
                            "version": self.rest.get("version", 0.4)}


FRONTEND_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}


@dataclass
class _Scope:
    """One graph while a workflow is flattened: the top graph, or a subgraph as one node of the graph above uses it."""

    nodes: dict[int, dict]
    links: dict[int, list]
    path: tuple[str, ...] = ()  # the ids of the subgraph nodes it lies in, outermost first
    definition: dict | None = None  # None: the top graph
    instance: dict | None = None  # the node of the graph above that uses the definition
    parent: "_Scope | None" = None

    def exec_id(self, node_id) -> str:
        """The node's id in the API prompt, as the front end makes it: "<subgraph node id>:...:<node id>"."""
        return ":".join(self.path + (str(node_id),))

    def child(self, instance: dict, definition: dict) -> "_Scope":
        return _Scope({n["id"]: n for n in definition.get("nodes", [])},
                      {l[0]: l for l in list_links(definition.get("links"))},
                      self.path + (str(instance["id"]),), definition, instance, self)


def _widget_values(node: dict) -> dict:
    """A node's widget values by input name (its saved values, migrated as its web extension does)."""
    import nodes

    values = list(node.get("widgets_values") or [])
    migrate = getattr(nodes.NODE_CLASS_MAPPINGS[node["type"]], "saved_widget_values", None)
    if migrate is not None:
        values = migrate(values)
    return dict(zip(widget_names(node["type"], values), values))


def ui_to_api(workflow: dict) -> dict:
    """Convert a UI-format workflow into the API prompt ComfyUI executes (as the front end does).

    Subgraphs are expanded: each node inside one appears once per node that uses the subgraph, under the id
    "<that node's id>:<its id>" (nested: one more prefix per level), and links through a subgraph's inputs
    and outputs are followed to the nodes on either side. A widget input that a subgraph input feeds, where
    the subgraph node's socket has no link, takes the value the subgraph node shows for it: the widget that
    its ``proxyWidgets`` promote for that input (newer front ends), else the inner node's own value."""
    definitions = subgraphs(workflow)

    def skipped(node: dict) -> bool:  # notes; muted (2) or bypassed (4) nodes
        return node["type"] in FRONTEND_ONLY or node.get("mode", 0) in (2, 4)

    def source(scope: _Scope, link: list) -> list | None:
        """Where an input really comes from: through bypassed nodes (their first linked input of the
        link's type passes on), reroutes and subgraph boundaries, nowhere from muted ones, as the front end does."""
        while True:
            if link[1] == SUBGRAPH_INPUT:  # out of the subgraph: the socket of the node that uses it
                name = scope.definition["inputs"][link[2]]["name"]
                outer = next((s for s in scope.instance.get("inputs", []) if s["name"] == name), None)
                if outer is None or outer.get("link") is None:
                    return None
                scope, link = scope.parent, scope.parent.links[outer["link"]]
                continue
            node = scope.nodes[link[1]]
            if node.get("mode", 0) == 4:
                through = [s["link"] for s in node.get("inputs", []) if s.get("type") == link[5] and s.get("link")]
                if not through:
                    return None
                link = scope.links[through[0]]
            elif node["type"] == "Reroute" and node.get("mode", 0) == 0:
                through = [s["link"] for s in node.get("inputs", []) if s.get("link") is not None]
                if not through:
                    return None
                link = scope.links[through[0]]
            elif node["type"] in definitions and node.get("mode", 0) == 0:  # into the subgraph, to what feeds its output
                inner = scope.child(node, definitions[node["type"]])
                feeding = [l for l in inner.links.values() if l[3] == SUBGRAPH_OUTPUT and l[4] == link[2]]
                if not feeding:
                    return None
                scope, link = inner, feeding[0]
            else:
                return None if skipped(node) else [scope.exec_id(link[1]), link[2]]

    def promoted(scope: _Scope, link: list, own):
        """The value a subgraph node shows for the widget input that this link (from its input ``link[2]``) feeds."""
        for inner_id, widget in (scope.instance.get("properties") or {}).get("proxyWidgets") or []:
            node = scope.nodes.get(int(inner_id)) if str(inner_id).lstrip("-").isdigit() else None
            fed = node is not None and any(
                s["name"] == widget and s.get("link") is not None and scope.links[s["link"]][1] == SUBGRAPH_INPUT
                and scope.links[s["link"]][2] == link[2] for s in node.get("inputs", []))
            if fed and widget in _widget_values(node):
                return _widget_values(node)[widget]
        return own

    prompt = {}

    def emit(scope: _Scope) -> None:
        for node in scope.nodes.values():
            if skipped(node):
                continue
            if node["type"] in definitions:
                emit(scope.child(node, definitions[node["type"]]))
                continue
            import nodes

            linked = {s["name"]: s["link"] for s in node.get("inputs", []) if s.get("link") is not None}
            values = list(node.get("widgets_values") or [])
            migrate = getattr(nodes.NODE_CLASS_MAPPINGS[node["type"]], "saved_widget_values", None)
            if migrate is not None:  # a node whose widgets moved: what its web extension does on load
                values = migrate(values)
            inputs, i = {}, 0
            for name, spec in layout(node_info(node["type"]), values, {s["name"] for s in node.get("inputs", [])}):
                value = None
                if is_widget(spec):
                    # a widget added after the file was saved keeps its default, as in the front end
                    value = values[i] if i < len(values) else widget_default(spec)
                    i += 1 + has_control_value(spec)
                    if name not in linked:
                        inputs[name] = value
                if name in linked:
                    link = scope.links[linked[name]]
                    found = source(scope, link)
                    if found:
                        inputs[name] = found
                    elif is_widget(spec) and link[1] == SUBGRAPH_INPUT:
                        inputs[name] = promoted(scope, link, value)
            prompt[scope.exec_id(node["id"])] = {"class_type": node["type"], "inputs": inputs}

    emit(_Scope({n["id"]: n for n in workflow["nodes"]}, {l[0]: l for l in list_links(workflow["links"])}))
    return prompt


def check_links(workflow: dict) -> list[str]:
    """Problems a user would see on load: unknown nodes, links between incompatible types (in every subgraph too)."""
    import nodes

    definitions = subgraphs(workflow)
    problems = []
    for key, graph in graphs(workflow).items():
        where = "" if key is None else f" (in the subgraph \"{graph['definition'].get('name', key)}\")"
        by_id = {n["id"]: n for n in graph["nodes"]}
        for n in graph["nodes"]:
            if n["type"] not in nodes.NODE_CLASS_MAPPINGS and n["type"] not in FRONTEND_ONLY and n["type"] not in definitions:
                problems.append(f"node {n['id']}{where}: unknown node type {n['type']}")

        def gives(node_id: int, slot: int) -> tuple[str, str]:
            if node_id == SUBGRAPH_INPUT:
                return "the subgraph's input", graph["definition"]["inputs"][slot]["type"]
            node = by_id[node_id]
            if node["type"] in definitions:
                return node["type"], definitions[node["type"]]["outputs"][slot]["type"]
            if node["type"] in FRONTEND_ONLY:
                return node["type"], "*"
            kind = node_info(node["type"])["output"][slot]
            return node["type"], "*" if kind == MATCH_TYPE else kind

        def takes(node_id: int, slot: int) -> tuple[str, str]:
            if node_id == SUBGRAPH_OUTPUT:
                return "the subgraph's output", graph["definition"]["outputs"][slot]["type"]
            node = by_id[node_id]
            socket = node["inputs"][slot]
            if node["type"] in definitions:
                spec = next(i for i in definitions[node["type"]]["inputs"] if i["name"] == socket["name"])
                return f"{node['type']}.{socket['name']}", spec["type"]
            if node["type"] in FRONTEND_ONLY:
                return node["type"], "*"
            return f"{node['type']}.{socket['name']}", accepted_types(dict(node_layout(node))[socket["name"]])

        for link_id, src, src_slot, dst, dst_slot, link_type in graph["links"]:
            if (src != SUBGRAPH_INPUT and src not in by_id) or (dst != SUBGRAPH_OUTPUT and dst not in by_id):
                problems.append(f"link {link_id}{where}: a node it joins is missing")
                continue
            (src_name, out_type), (dst_name, in_type) = gives(src, src_slot), takes(dst, dst_slot)
            if not (types_match(out_type, in_type) and types_match(link_type or "*", out_type)):
                problems.append(f"link {link_id}{where}: {src_name} gives {out_type}, {dst_name} takes {in_type}")
    return problems
