"""ComfyUI's own workflow templates, and what a workflow built from one changed.

The templates ship as a package (comfyui-workflow-templates; the video ones in its media-video part,
installed by tools/setup_env.sh). Workflows built from a template keep its node ids, so each template
node can be found again and compared: its type, widget values and mode, and the links between
template nodes. The pack owns only the nodes it adds and the links through them.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from importlib import metadata, resources

from tools.make_thumbnails import PACK_PREFIX
from tools.workflow import widget_names

PACKAGE = "comfyui_workflow_templates_media_video"


def load(name: str) -> dict:
    return json.loads((resources.files(PACKAGE) / "templates" / f"{name}.json").read_text())


def version() -> str:
    return metadata.version(PACKAGE.replace("_", "-"))


@dataclass(frozen=True)
class Difference:
    kind: str  # removed, replaced, mode, setting, link, added, pack
    text: str

    @property
    def drift(self) -> bool:
        """A setting or link of a kept template node changed: nothing the pack owns."""
        return self.kind in ("setting", "link")


def label(node: dict) -> str:
    return f'{node["type"]} "{node["title"]}"' if node.get("title") else node["type"]


def _is_pack(node: dict) -> bool:
    return node["type"].startswith(PACK_PREFIX)


def _inputs(workflow: dict) -> dict[tuple[int, str], int]:
    """(node id, input name) -> source node id, following links back through the pack's
    nodes (an AdaCache node passes on what its input of the same type brings)."""
    nodes = {n["id"]: n for n in workflow["nodes"]}
    links = {l[0]: l for l in workflow["links"]}
    out = {}
    for node in workflow["nodes"]:
        for socket in node.get("inputs", []):
            link = links.get(socket.get("link"))
            while link and _is_pack(nodes[link[1]]):
                link = next((links.get(s.get("link")) for s in nodes[link[1]].get("inputs", [])
                             if s["type"] == link[5] and s.get("link")), None)
            if link:
                out[node["id"], socket["name"]] = link[1]
    return out


def _counted(labels: list[str]) -> str:
    counts = Counter(labels)
    return ", ".join(f"{n}x {item}" if n > 1 else item for item, n in counts.items())


def _settings(old: dict, new: dict) -> list[str]:
    """The widget values that differ, by input name (shared names only, where the type changed)."""
    if old["type"] in ("Note", "MarkdownNote"):
        return [] if old.get("widgets_values") == new.get("widgets_values") else ["text changed"]
    before = dict(zip(widget_names(old["type"]), old.get("widgets_values") or []))
    after = dict(zip(widget_names(new["type"]), new.get("widgets_values") or []))
    return [f"{name} {before[name]!r} -> {after[name]!r}" for name in before if name in after and before[name] != after[name]]


def differences(workflow: dict, template: dict) -> list[Difference]:
    """What the workflow changed of its template: node by node where a setting or link changed,
    in one line each for the nodes and groups removed, enabled and added."""
    mine = {n["id"]: n for n in workflow["nodes"]}
    found: list[Difference] = []
    removed, enabled = [], []
    for old in template["nodes"]:
        new = mine.get(old["id"])
        if new is None:
            removed.append(label(old))
            continue
        changes = _settings(old, new)
        if new["type"] != old["type"]:
            found.append(Difference("replaced", f"{label(old)} replaced by {new['type']}" + "".join(f"; {c}" for c in changes)))
        else:
            found += [Difference("setting", f"{label(old)}: {c}") for c in changes]
        if (old.get("mode", 0), new.get("mode", 0)) == (4, 0):
            enabled.append(label(old))
        elif new.get("mode", 0) != old.get("mode", 0):
            found.append(Difference("setting", f"{label(old)}: mode {old.get('mode', 0)} -> {new.get('mode', 0)}"))
    was, now = _inputs(template), _inputs(workflow)
    for (node_id, name), src in was.items():
        if node_id in mine and src in mine and now.get((node_id, name)) != src:
            moved = mine.get(now.get((node_id, name)))
            found.append(Difference("link", f"{label(mine[node_id])}.{name} from {label(moved) if moved else 'nothing'}"
                                            f" (the template: {label(mine[src])})"))
    groups = Counter(g["title"] for g in template.get("groups", [])) - Counter(g["title"] for g in workflow.get("groups", []))
    if groups:
        found.append(Difference("removed", "removed the groups " + _counted([f'"{t}"' for t in groups.elements()])))
    if removed:
        found.append(Difference("removed", "removed " + _counted(removed)))
    if enabled:
        found.append(Difference("mode", "enabled (the template has them bypassed) " + _counted(enabled)))
    template_ids = {n["id"] for n in template["nodes"]}
    added = [n for n in workflow["nodes"] if n["id"] not in template_ids]
    if any(not _is_pack(n) for n in added):
        found.append(Difference("added", "added " + _counted([label(n) for n in added if not _is_pack(n)])))
    if any(_is_pack(n) for n in added):
        found.append(Difference("pack", "the pack's nodes: " + _counted([label(n) for n in added if _is_pack(n)])))
    return found
