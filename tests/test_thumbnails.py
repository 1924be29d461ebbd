"""Workflow thumbnails: the `<name>.jpg` beside each workflow that ComfyUI's template browser shows,
a picture of the workflow's node graph drawn by tools/make_thumbnails.py (no ComfyUI needed)."""
import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from tools import make_thumbnails

pytestmark = pytest.mark.once  # tests/conftest.py: the same on every ComfyUI

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))
REGENERATE = "run `.venv/bin/python tools/make_thumbnails.py` and commit the thumbnails"


def test_there_are_workflows_to_draw():
    assert WORKFLOWS


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_each_workflow_has_its_thumbnail_beside_it(path):
    """The front end loads a custom node template's thumbnail from `<name>.jpg` next to `<name>.json`."""
    thumbnail = path.with_name(path.stem + ".jpg")
    assert make_thumbnails.thumbnail_path(path) == thumbnail
    assert thumbnail.is_file(), f"{thumbnail.name} is missing: {REGENERATE}"
    with Image.open(thumbnail) as image:
        assert (image.format, image.size) == ("JPEG", make_thumbnails.SIZE)
    assert thumbnail.stat().st_size < 60_000


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_two_node_boxes_overlap(path):
    """Boxes as drawn (title bar included) neither overlap nor touch, so the picture shows every node."""
    assert make_thumbnails.overlapping(json.loads(path.read_text())) == []


def test_overlapping_boxes_are_found():
    nodes = [{"id": 1, "pos": [0, 0], "size": [100, 50]}, {"id": 2, "pos": [0, 50 + make_thumbnails.TITLE_H], "size": [100, 50]},
             {"id": 3, "pos": [101, 0], "size": [100, 50]}]
    assert make_thumbnails.overlapping({"nodes": nodes}) == [(1, 2)]  # 2's title bar touches 1's bottom


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_thumbnail_matches_a_fresh_render(path):
    problem = make_thumbnails.problem(path)
    assert problem is None, f"{problem}: {REGENERATE}"


def test_no_thumbnail_without_its_workflow():
    assert make_thumbnails.orphans() == [], REGENERATE


def test_rendering_is_deterministic():
    path = WORKFLOWS[0]
    assert make_thumbnails.encode(make_thumbnails.render(path)) == make_thumbnails.encode(make_thumbnails.render(path))


def test_a_changed_workflow_is_caught(tmp_path):
    """A workflow edited without regenerating its thumbnail fails the check, with the command to run."""
    src = REPO / "workflows" / "wan2.1_t2v_1.3B_adacache.json"
    workflow = json.loads(src.read_text())
    shutil.copy(make_thumbnails.thumbnail_path(src), tmp_path / (src.stem + ".jpg"))
    node = next(n for n in workflow["nodes"] if n["type"] == "KSampler")
    node["title"] = "Sampler renamed"
    changed = tmp_path / src.name
    changed.write_text(json.dumps(workflow))
    assert "differs from a fresh render" in make_thumbnails.problem(changed)
    assert make_thumbnails.main(["--check"]) == 0  # the real folder is untouched and up to date
    (tmp_path / (src.stem + ".jpg")).unlink()
    assert make_thumbnails.problem(changed).endswith("missing")


def test_the_pack_nodes_are_the_highlighted_ones():
    """Every node the pack registers is drawn in the highlight colour (its node_id starts with the prefix),
    and each one has the display name the thumbnails use."""
    node_ids = set()
    for source in (REPO / "nodes").glob("*.py"):
        node_ids |= set(re.findall(r'node_id="([^"]+)"', source.read_text()))
    assert node_ids and all(i.startswith(make_thumbnails.PACK_PREFIX) for i in node_ids)
    assert set(make_thumbnails.pack_display_names()) == node_ids


def test_overlapping_boxes_inside_a_subgraph_are_found():
    nodes = [{"id": 1, "pos": [0, 0], "size": [100, 50]}, {"id": 2, "pos": [50, 10], "size": [100, 50]}]
    assert make_thumbnails.overlapping({"nodes": [], "definitions": {"subgraphs": [{"id": "s", "nodes": nodes}]}}) == [(1, 2)]


def test_a_workflow_that_samples_inside_a_subgraph_shows_that_subgraph():
    """Newer templates (LTX-2.3) sample inside a subgraph: the picture shows the graph that holds the pack's nodes,
    and says so; a workflow whose own graph holds them shows that."""
    workflow = json.loads((REPO / "workflows" / "ltx2_3_t2v_adacache.json").read_text())
    assert not any(make_thumbnails.is_pack_node(n) for n in workflow["nodes"])
    graph, name = make_thumbnails.shown_graph(workflow)
    assert name == "Text to Video (LTX-2.3)"
    assert {"AdaCachePatchModel", "AdaCacheScheduleViewer"} <= {n["type"] for n in graph["nodes"]}
    flat = json.loads((REPO / "workflows" / "wan2.1_t2v_1.3B_adacache.json").read_text())
    assert make_thumbnails.shown_graph(flat) == (flat, None)
