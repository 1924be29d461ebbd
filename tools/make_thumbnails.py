"""Thumbnails for the workflows in workflows/: a picture of each workflow's node graph.

ComfyUI serves a custom node pack's workflows/ folder as templates, and its front end loads the
thumbnail of ``<name>.json`` from ``<name>.jpg`` beside it (``/api/workflow_templates/<pack>/<name>.jpg``).
A template's thumbnail usually shows what the workflow makes; no real video model was run here, so
such a picture would be made up. What the thumbnail honestly can show is the workflow itself: its
nodes where they sit on the canvas, the links between them (coloured by type as ComfyUI's dark
theme colours them), the pack's own nodes highlighted, and the workflow's name.

    .venv/bin/python tools/make_thumbnails.py          # write workflows/<name>.jpg for every workflow
    .venv/bin/python tools/make_thumbnails.py --check  # exit 1, naming each thumbnail missing or out of date

Deterministic: the same workflow gives the same bytes on the same Pillow (no fonts but Pillow's own).
"""
from __future__ import annotations

import argparse
import io
import json
import re
import sys
import textwrap
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageChops, ImageColor, ImageDraw, ImageFont

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO_ROOT / "workflows"
SIZE = (512, 512)  # the front end shows template thumbnails in a square box (BaseThumbnail.vue: aspect-square)
SUFFIX = ".jpg"  # the front end asks for `<name>.jpg` (workflowTemplatesStore.ts: mediaSubtype 'jpg')
QUALITY = 85
# JPEG decoders may differ by a few levels per pixel; a changed node title or link differs by far more.
TOLERANCE = 16
SS = 2  # drawn at twice the size, then scaled down: smooth curves and text

# LiteGraph's geometry (canvas units) and ComfyUI's "Dark (Default)" palette.
TITLE_H, SLOT_H = 30, 20
BACKGROUND, GRID = "#141414", "#1d1d1d"
NODE_COLOR, NODE_BGCOLOR, NODE_TEXT = "#333", "#353535", "#dddddd"
NOTE_COLOR, NOTE_BGCOLOR = "#432", "#653"  # ComfyUI's Note node is "yellow"
LINK_COLOR = "#9A9"
SLOT_COLORS = {"CLIP": "#FFD500", "CLIP_VISION": "#A8DADC", "CLIP_VISION_OUTPUT": "#ad7452", "CONDITIONING": "#FFA931",
               "CONTROL_NET": "#6EE7B7", "IMAGE": "#64B5F6", "LATENT": "#FF9CF9", "MASK": "#81C784", "MODEL": "#B39DDB",
               "STYLE_MODEL": "#C2FFAE", "VAE": "#FF6E6E", "NOISE": "#B0B0B0", "GUIDER": "#66FFFF",
               "SAMPLER": "#ECB4B4", "SIGMAS": "#CDFFCD", "TAESD": "#DCC274"}
# The pack's own nodes: every node_id in nodes/*.py starts with this (tests/test_thumbnails.py checks it).
PACK_PREFIX = "AdaCache"
PACK_TITLE, PACK_BODY, PACK_OUTLINE = "#1f6f62", "#243f3a", "#5fd6bf"
NOTE_TYPES = {"Note", "MarkdownNote"}
KEEP_WORDS = ("AdaCache", "MoReg", "KSampler", "LTXV", "CLIP", "UNET", "VAE", "WEBP", "SD3")


def thumbnail_path(workflow: Path) -> Path:
    return Path(workflow).with_suffix(SUFFIX)


@lru_cache(maxsize=None)
def font(px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=px)  # Pillow's bundled font (Pillow >= 10.1 with FreeType)


@lru_cache(maxsize=None)
def pack_display_names() -> dict[str, str]:
    """node_id -> display_name of the pack's nodes, read from nodes/*.py (no ComfyUI needed)."""
    names = {}
    for source in sorted((REPO_ROOT / "nodes").glob("*.py")):
        for node_id, display in re.findall(r'node_id="([^"]+)",\s*display_name="([^"]+)"', source.read_text()):
            names[node_id] = display
    return names


def split_words(node_type: str) -> str:
    """'EmptyHunyuanLatentVideo' -> 'Empty Hunyuan Latent Video' (what a type id says, as words)."""
    words, i = [], 0
    while i < len(node_type):
        keep = next((w for w in KEEP_WORDS if node_type.startswith(w, i)), None)
        match = keep or re.compile(r"[A-Z][a-z]+|[A-Z]+(?![a-z])|[a-z]+|\d+|.").match(node_type, i).group()
        words.append(match)
        i += len(match)
    return " ".join(w for w in words if w.strip("_ "))


def node_title(node: dict) -> str:
    return node.get("title") or pack_display_names().get(node["type"]) or split_words(node["type"])


def is_pack_node(node: dict) -> bool:
    return node["type"].startswith(PACK_PREFIX)


def rgb(color: str) -> tuple[int, int, int]:
    return ImageColor.getrgb(color)[:3]


def mix(a: str, b: str, t: float) -> tuple[int, int, int]:
    return tuple(round(x + (y - x) * t) for x, y in zip(rgb(a), rgb(b)))


def wrap(text: str, fnt: ImageFont.FreeTypeFont, width: float, max_lines: int) -> list[str]:
    """Words wrapped to `width` pixels; a last line that does not fit ends in an ellipsis."""
    lines: list[str] = []
    for word in text.split():
        if lines and fnt.getlength(lines[-1] + " " + word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    cut = len(lines) > max_lines
    lines = lines[:max_lines]
    for k, line in enumerate(lines):
        if fnt.getlength(line) > width or (cut and k == len(lines) - 1):
            while line and fnt.getlength(line + "…") > width:
                line = line[:-1]
            lines[k] = line + "…"
    return lines


def fit_font(text: str, width: float, largest: int, smallest: int) -> ImageFont.FreeTypeFont:
    for px in range(largest, smallest - 1, -1):
        if font(px).getlength(text) <= width:
            return font(px)
    return font(smallest)


def node_box(node: dict) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of a node on the canvas, its title bar included (only that when collapsed)."""
    x, y = node["pos"]
    w, h = node["size"]
    return x, y - TITLE_H, x + w, y + (0 if (node.get("flags") or {}).get("collapsed") else h)


def subgraph_definitions(workflow: dict) -> list[dict]:
    """The workflow's subgraph definitions (newer ComfyUI's templates): each a graph of its own."""
    return list((workflow.get("definitions") or {}).get("subgraphs", []))


def overlapping(workflow: dict) -> list[tuple[int, int]]:
    """Ids of node pairs whose boxes overlap or touch (the picture would draw one over the other), in the
    workflow's graph and in each of its subgraphs."""
    pairs = []
    for graph in [workflow] + subgraph_definitions(workflow):
        boxes = [(n["id"], node_box(n)) for n in graph.get("nodes", [])]
        pairs += [(i, j) for k, (i, a) in enumerate(boxes) for j, b in boxes[k + 1:]
                  if a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]]
    return pairs


def shown_graph(workflow: dict) -> tuple[dict, str | None]:
    """The graph the picture shows: the workflow's own, or where the pack's nodes lie inside a subgraph (newer
    templates sample inside one), that subgraph's, with its name."""
    if not any(is_pack_node(n) for n in workflow["nodes"]):
        for definition in subgraph_definitions(workflow):
            if any(is_pack_node(n) for n in definition.get("nodes", [])):
                return definition, definition.get("name") or definition["id"]
    return workflow, None


def link_tuples(workflow: dict) -> list[tuple[int, int, int, int, str]]:
    """(from_node, from_slot, to_node, to_slot, type) for list-style and object-style links."""
    out = []
    for link in workflow.get("links") or []:
        if isinstance(link, dict):
            out.append((link["origin_id"], link["origin_slot"], link["target_id"], link["target_slot"], link.get("type")))
        else:
            out.append((link[1], link[2], link[3], link[4], link[5] if len(link) > 5 else None))
    return out


def render(workflow_path: Path) -> Image.Image:
    """The thumbnail of one UI-format workflow, as an RGB image of SIZE."""
    workflow, subgraph = shown_graph(json.loads(Path(workflow_path).read_text()))
    name = Path(workflow_path).stem
    nodes = {n["id"]: n for n in workflow["nodes"]}
    W, H = SIZE[0] * SS, SIZE[1] * SS
    image = Image.new("RGB", (W, H), BACKGROUND)
    draw = ImageDraw.Draw(image)
    pad = 14 * SS

    # Header: the workflow's name and what the picture is.
    name_font = fit_font(name, W - 2 * pad, 24 * SS, 13 * SS)
    draw.text((pad, pad), name, font=name_font, fill="#f2f2f2")
    y = pad + name_font.size + 7 * SS
    small = font(12 * SS)
    swatch = small.size
    draw.rounded_rectangle((pad, y + 1 * SS, pad + swatch, y + swatch), radius=3 * SS, fill=PACK_TITLE,
                           outline=PACK_OUTLINE, width=SS)
    pack_nodes = sum(is_pack_node(n) for n in nodes.values())
    caption = f"AdaCache nodes ({pack_nodes} of {len(nodes)}). The node graph, not an output."
    if subgraph:
        caption = f"AdaCache nodes ({pack_nodes} of {len(nodes)}) in the subgraph \"{subgraph}\". Not an output."
    draw.text((pad + swatch + 6 * SS, y), caption, font=fit_font(caption, W - 2 * pad - swatch - 6 * SS, small.size, 8 * SS),
              fill="#a8a8a8")
    top = y + small.size + 12 * SS
    draw.line((pad, top - 6 * SS, W - pad, top - 6 * SS), fill="#2c2c2c", width=SS)

    # Fit the graph (node boxes with their title bars, and groups) into the rest.
    boxes = [node_box(n) for n in nodes.values()]
    boxes += [tuple(g["bounding"][:2]) + (g["bounding"][0] + g["bounding"][2], g["bounding"][1] + g["bounding"][3])
              for g in workflow.get("groups") or []]
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    area = (pad, top + 4 * SS, W - pad, H - pad)
    scale = min((area[2] - area[0]) / (x1 - x0), (area[3] - area[1]) / (y1 - y0))
    ox = area[0] + ((area[2] - area[0]) - (x1 - x0) * scale) / 2 - x0 * scale
    oy = area[1] + ((area[3] - area[1]) - (y1 - y0) * scale) / 2 - y0 * scale

    def at(x: float, y: float) -> tuple[float, float]:
        return ox + x * scale, oy + y * scale

    step = 40 * SS  # a faint canvas grid
    for gx in range(0, W, step):
        draw.line((gx, top, gx, H), fill=GRID)
    for gy in range(top - top % step + step, H, step):
        draw.line((0, gy, W, gy), fill=GRID)

    for group in workflow.get("groups") or []:
        gx, gy, gw, gh = group["bounding"]
        color = group.get("color") or "#3f789e"
        draw.rounded_rectangle((*at(gx, gy), *at(gx + gw, gy + gh)), radius=4 * SS, fill=mix(BACKGROUND, color, 0.25),
                               outline=color, width=SS)
        if group.get("title"):
            draw.text((at(gx, gy)[0] + 4 * SS, at(gx, gy)[1] + 2 * SS), group["title"], font=font(11 * SS), fill="#dddddd")

    # Links first (ComfyUI draws them under the nodes): LiteGraph's spline from slot to slot.
    ends = []
    for from_id, from_slot, to_id, to_slot, kind in link_tuples(workflow):
        if from_id not in nodes or to_id not in nodes:
            continue
        a, b = nodes[from_id], nodes[to_id]
        start = (a["pos"][0] + a["size"][0], a["pos"][1] + (from_slot + 0.7) * SLOT_H)
        end = (b["pos"][0], b["pos"][1] + (to_slot + 0.7) * SLOT_H)
        dist = ((end[0] - start[0]) ** 2 + (end[1] - start[1]) ** 2) ** 0.5 * 0.25
        c1, c2 = (start[0] + dist, start[1]), (end[0] - dist, end[1])
        points = []
        for k in range(41):
            t = k / 40
            u = 1 - t
            points.append(at(u ** 3 * start[0] + 3 * u * u * t * c1[0] + 3 * u * t * t * c2[0] + t ** 3 * end[0],
                             u ** 3 * start[1] + 3 * u * u * t * c1[1] + 3 * u * t * t * c2[1] + t ** 3 * end[1]))
        color = SLOT_COLORS.get(kind or "", LINK_COLOR)
        draw.line(points, fill=color, width=2 * SS + 1, joint="curve")
        ends += [(at(*start), color), (at(*end), color)]

    # Nodes: title bar and body; notes show the start of their text.
    radius = max(2, round(8 * scale))
    for node in nodes.values():
        collapsed = (node.get("flags") or {}).get("collapsed")
        box = node_box(node)
        left, head = at(*box[:2])
        right, bottom = at(*box[2:])
        pack, note = is_pack_node(node), node["type"] in NOTE_TYPES
        title_color = PACK_TITLE if pack else node.get("color") or (NOTE_COLOR if note else NODE_COLOR)
        body_color = PACK_BODY if pack else node.get("bgcolor") or (NOTE_BGCOLOR if note else NODE_BGCOLOR)
        if node.get("mode") == 4:  # bypassed: ComfyUI tints it magenta
            title_color, body_color = mix(title_color, "#FF00FF", 0.35), mix(body_color, "#FF00FF", 0.35)
        elif node.get("mode") == 2:  # muted
            title_color, body_color = mix(title_color, BACKGROUND, 0.5), mix(body_color, BACKGROUND, 0.5)

        title_font = font(10 * SS)
        lines = wrap(node_title(node), title_font, right - left - 8 * SS, 2)
        line_h = title_font.size + 2 * SS
        bar = min(bottom - head, max(at(0, TITLE_H)[1] - at(0, 0)[1], len(lines) * line_h + 5 * SS))
        draw.rounded_rectangle((left + SS, head + 2 * SS, right + SS, bottom + 2 * SS), radius=radius, fill="#0b0b0b")
        draw.rounded_rectangle((left, head, right, bottom), radius=radius, fill=body_color)
        draw.rounded_rectangle((left, head, right, head + bar), radius=radius, fill=title_color,
                               corners=(True, True, bar >= bottom - head, bar >= bottom - head))
        if pack:
            draw.rounded_rectangle((left, head, right, bottom), radius=radius, outline=PACK_OUTLINE, width=SS + 1)
        for k, line in enumerate(lines):
            draw.text((left + 4 * SS, head + 3 * SS + k * line_h), line, font=title_font, fill=NODE_TEXT)

        text = " ".join(str(v) for v in node.get("widgets_values") or [] if isinstance(v, str)) if note else ""
        if text and not collapsed:
            note_font = font(8 * SS)
            room = int((bottom - head - bar - 4 * SS) // (note_font.size + SS))
            chars = max(8, int((right - left - 8 * SS) / note_font.getlength("n")))
            note_lines = textwrap.wrap(text, chars)
            for k, line in enumerate(note_lines[:max(room, 0)]):
                if k == room - 1 and len(note_lines) > room:
                    line = line.rstrip() + " …"
                draw.text((left + 4 * SS, head + bar + 2 * SS + k * (note_font.size + SS)), line, font=note_font,
                          fill="#d9cbb0")

    for (x, y), color in ends:  # slot dots, over the node edges
        r = 2.5 * SS
        draw.ellipse((x - r, y - r, x + r, y + r), fill=color, outline="#141414", width=1)

    return image.resize(SIZE, Image.LANCZOS)


def encode(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=QUALITY, optimize=True, subsampling=0)
    return out.getvalue()


def decoded(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def problem(workflow: Path) -> str | None:
    """Why the workflow's thumbnail is missing or out of date, or None when it matches a fresh render."""
    path = thumbnail_path(workflow)
    rel = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
    if not path.is_file():
        return f"{rel}: missing"
    try:
        have = decoded(path.read_bytes())
    except OSError as error:
        return f"{rel}: not an image ({error})"
    if have.size != SIZE:
        return f"{rel}: {have.size[0]}x{have.size[1]}, not {SIZE[0]}x{SIZE[1]}"
    # Compared decoded: JPEG is lossy, so the file is held against a fresh render encoded the same way.
    worst = max(hi for _, hi in ImageChops.difference(have, decoded(encode(render(workflow)))).getextrema())
    if worst > TOLERANCE:
        return f"{rel}: differs from a fresh render of {workflow.name} (up to {worst} levels per pixel)"
    return None


def workflows(folder: Path = WORKFLOWS) -> list[Path]:
    return sorted(Path(folder).glob("*.json"))


def orphans(folder: Path = WORKFLOWS) -> list[Path]:
    """Thumbnails whose workflow is gone."""
    return [p for p in sorted(Path(folder).glob("*" + SUFFIX)) if not p.with_suffix(".json").is_file()]


def write_all(folder: Path = WORKFLOWS) -> None:
    for workflow in workflows(folder):
        path = thumbnail_path(workflow)
        data = encode(render(workflow))
        if not path.is_file() or path.read_bytes() != data:
            path.write_bytes(data)
            print("wrote", path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path)
    for path in orphans(folder):
        path.unlink()
        print("removed", path, "(its workflow is gone)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a thumbnail is missing or out of date")
    args = parser.parse_args(argv)
    if not args.check:
        write_all()
        return 0
    problems = [p for p in map(problem, workflows()) if p] + [f"{p.name}: its workflow is gone" for p in orphans()]
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print("run `.venv/bin/python tools/make_thumbnails.py`", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
