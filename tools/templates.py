"""ComfyUI's own workflow templates, and what a workflow built from one changed.

The templates ship as a package (comfyui-workflow-templates; the video ones in its media-video part,
installed by tools/setup_env.sh). Workflows built from a template keep its node ids, so each template
node can be found again and compared: its type, widget values and mode, and the links between
template nodes. The pack owns only the nodes it adds and the links through them. A template with
subgraphs is compared graph by graph: its top graph, then each subgraph definition (by its id).

The venv holds the templates of the pinned ComfyUI (its requirements' comfyui-workflow-templates).
A newer ComfyUI's templates (``NEWER``: 0.20.1 requires comfyui-workflow-templates 0.9.73, whose
media-video part is 0.3.85) are installed beside the venv's packages, in
``.venv/templates-media-video-<version>``, so that both sets are there at once.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

from tools.make_thumbnails import PACK_PREFIX
from tools.workflow import SUBGRAPH_INPUT, SUBGRAPH_OUTPUT, graphs, subgraphs, widget_names

PACKAGE = "comfyui_workflow_templates_media_video"
NEWER = "0.3.85"  # ComfyUI 0.20.1's (comfyui-workflow-templates 0.9.73); tools/setup_env.sh installs it
VENV = Path(__file__).resolve().parent.parent / ".venv"


def newer_root(version: str) -> Path:
    """Where tools/setup_env.sh installs this version of the templates, beside the venv's packages."""
    return VENV / f"templates-media-video-{version}"


def load(name: str, version: str | None = None) -> dict:
    """A template of the venv's package, or (``version``) of that version installed beside it."""
    if version is None:
        return json.loads((resources.files(PACKAGE) / "templates" / f"{name}.json").read_text())
    path = newer_root(version) / PACKAGE / "templates" / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `bash tools/setup_env.sh` (it installs "
                                f"comfyui-workflow-templates-media-video=={version} there)")
    return json.loads(path.read_text())


def version(which: str | None = None) -> str:
    """The version of the venv's templates, or (``which``) of the copy installed beside it, as its metadata say."""
    if which is None:
        return metadata.version(PACKAGE.replace("_", "-"))
    found = [d.version for d in metadata.distributions(path=[str(newer_root(which))])
             if d.metadata["Name"].replace("_", "-").lower() == PACKAGE.replace("_", "-")]
    if not found:
        raise FileNotFoundError(f"no templates package in {newer_root(which)}: run `bash tools/setup_env.sh`")
    return found[0]


# A seed's "control after generate" set to fixed: the pack's doing where a workflow carries the compare branch
# (make_workflows._seed_fixed), not drift from the template.
SEED_FIXED = re.compile(r"\S+ control '\w+' -> 'fixed'")


@dataclass(frozen=True)
class Difference:
    kind: str  # removed, replaced, mode, setting, seed (kept fixed for the compare branch), link, added, pack
    text: str

    @property
    def drift(self) -> bool:
        """A setting or link of a kept template node changed: nothing the pack owns."""
        return self.kind in ("setting", "link")


def label(node: dict) -> str:
    return f'{node["type"]} "{node["title"]}"' if node.get("title") else node["type"]


# what the ends of a subgraph's links stand for (its inputs and outputs), so that links from them compare too
PSEUDO_NODES = {SUBGRAPH_INPUT: {"id": SUBGRAPH_INPUT, "type": "the subgraph's inputs", "inputs": []},
                SUBGRAPH_OUTPUT: {"id": SUBGRAPH_OUTPUT, "type": "the subgraph's outputs", "inputs": []}}


def _is_pack(node: dict) -> bool:
    return node["type"].startswith(PACK_PREFIX)


def _inputs(graph: dict) -> dict[tuple[int, str], int | tuple[int, int]]:
    """(node id, input name) -> source node id, following links back through the pack's
    nodes (an AdaCache node passes on what its input of the same type brings); a graph of :func:`graphs`,
    whose subgraph outputs count as inputs of node -20 named "output <slot>", and whose inputs as sources
    (-10, slot)."""
    nodes = PSEUDO_NODES | {n["id"]: n for n in graph["nodes"]}
    links = {l[0]: l for l in graph["links"]}

    def origin(link: list | None) -> int | None:
        while link and _is_pack(nodes[link[1]]):
            link = next((links.get(s.get("link")) for s in nodes[link[1]].get("inputs", [])
                         if s["type"] == link[5] and s.get("link")), None)
        if link is None:
            return None
        return (SUBGRAPH_INPUT, link[2]) if link[1] == SUBGRAPH_INPUT else link[1]

    ends = [((node["id"], socket["name"]), links.get(socket.get("link"))) for node in graph["nodes"]
            for socket in node.get("inputs", [])]
    ends += [((SUBGRAPH_OUTPUT, f"output {l[4]}"), l) for l in graph["links"] if l[3] == SUBGRAPH_OUTPUT]
    return {end: origin(link) for end, link in ends if origin(link) is not None}


def _counted(labels: list[str]) -> str:
    counts = Counter(labels)
    return ", ".join(f"{n}x {item}" if n > 1 else item for item, n in counts.items())


def _settings(old: dict, new: dict) -> list[str]:
    """The widget values that differ, by input name (shared names only, where the type changed); by position
    for a node this ComfyUI does not have (a subgraph's node, or a newer ComfyUI's)."""
    if old.get("widgets_values") == new.get("widgets_values"):
        return []
    if old["type"] in ("Note", "MarkdownNote"):
        return ["text changed"]
    import nodes

    if old["type"] not in nodes.NODE_CLASS_MAPPINGS or new["type"] not in nodes.NODE_CLASS_MAPPINGS:
        before, after = (dict(enumerate(n.get("widgets_values") or [], start=1)) for n in (old, new))
        return [f"widget {k} {before[k]!r} -> {after.get(k)!r}" for k in before if before[k] != after.get(k)]
    before = dict(zip(widget_names(old["type"], old.get("widgets_values")), old.get("widgets_values") or []))
    after = dict(zip(widget_names(new["type"], new.get("widgets_values")), new.get("widgets_values") or []))
    return [f"{name} {before[name]!r} -> {after[name]!r}" for name in before if name in after and before[name] != after[name]]


def differences(workflow: dict, template: dict) -> list[Difference]:
    """What the workflow changed of its template: node by node where a setting or link changed,
    in one line each for the nodes and groups removed, enabled and added (over all its graphs)."""
    found: list[Difference] = []
    removed, enabled, added = [], [], []
    removed_groups: Counter = Counter()
    names = {sub_id: d.get("name", sub_id) for sub_id, d in (subgraphs(template) | subgraphs(workflow)).items()}

    def name(node: dict) -> str:  # a node that uses a subgraph: by the subgraph's name
        return f'subgraph "{names[node["type"]]}"' if node["type"] in names else label(node)

    theirs, ours = graphs(template), graphs(workflow)
    for key in list(theirs) + [k for k in ours if k not in theirs]:
        old_graph = theirs.get(key, {"nodes": [], "links": []})
        new_graph = ours.get(key, {"nodes": [], "links": []})
        mine = {n["id"]: n for n in new_graph["nodes"]}
        for old in old_graph["nodes"]:
            new = mine.get(old["id"])
            if new is None:
                removed.append(name(old))
                continue
            changes = _settings(old, new)
            if new["type"] != old["type"]:
                found.append(Difference("replaced", f"{name(old)} replaced by {new['type']}" + "".join(f"; {c}" for c in changes)))
            else:
                found += [Difference("seed" if SEED_FIXED.fullmatch(c) else "setting", f"{name(old)}: {c}") for c in changes]
            if (old.get("mode", 0), new.get("mode", 0)) == (4, 0):
                enabled.append(name(old))
            elif new.get("mode", 0) != old.get("mode", 0):
                found.append(Difference("setting", f"{name(old)}: mode {old.get('mode', 0)} -> {new.get('mode', 0)}"))
        definition = new_graph.get("definition") or {}
        known = PSEUDO_NODES | mine | {(SUBGRAPH_INPUT, i): {"type": f'the subgraph\'s input "{end["name"]}"'}
                                       for i, end in enumerate(definition.get("inputs", []))}
        was, now = _inputs(old_graph), _inputs(new_graph)
        for (node_id, socket), src in was.items():
            if node_id in known and src in known and now.get((node_id, socket)) != src:
                moved = known.get(now.get((node_id, socket)))
                found.append(Difference("link", f"{name(known[node_id])}.{socket} from {name(moved) if moved else 'nothing'}"
                                                f" (the template: {name(known[src])})"))
        old_groups = (old_graph.get("definition") or template).get("groups", [])
        new_groups = (new_graph.get("definition") or workflow).get("groups", [])
        removed_groups += Counter(g["title"] for g in old_groups) - Counter(g["title"] for g in new_groups)
        template_ids = {n["id"] for n in old_graph["nodes"]}
        added += [n for n in new_graph["nodes"] if n["id"] not in template_ids]
    if removed_groups:
        found.append(Difference("removed", "removed the groups " + _counted([f'"{t}"' for t in removed_groups.elements()])))
    if removed:
        found.append(Difference("removed", "removed " + _counted(removed)))
    if enabled:
        found.append(Difference("mode", "enabled (the template has them bypassed) " + _counted(enabled)))
    if any(not _is_pack(n) for n in added):
        found.append(Difference("added", "added " + _counted([name(n) for n in added if not _is_pack(n)])))
    if any(_is_pack(n) for n in added):
        found.append(Difference("pack", "the pack's nodes: " + _counted([name(n) for n in added if _is_pack(n)])))
    return found
