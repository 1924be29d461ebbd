"""What an artist reads: node tooltips short and in their words, the README's install section, links
that work, and the front end's table of renamed presets equal to the server's."""
import copy
import json
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.once  # tests/conftest.py: the same on every ComfyUI

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
TOOLTIP_LIMIT = 200  # characters: what the input does and which way to turn it; details go to the description
README_LIMIT = 10_000  # bytes: the size of the best-loved packs' READMEs (TeaCache 6.9 kB ... VideoHelperSuite 8.8 kB)


def pack_node_infos(runtime) -> dict[str, dict]:
    return {cls.define_schema().node_id: cls.GET_NODE_INFO_V1() for cls in runtime.pack.nodes.NODES}


def tooltips(info: dict):
    for section in ("required", "optional"):
        for name, spec in info["input"].get(section, {}).items():
            yield name, (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}).get("tooltip")
    for name, tip in zip(info["output_name"], info.get("output_tooltips") or []):
        yield f"output {name}", tip


def tooltip_problems(infos: dict[str, dict]) -> list[str]:
    problems = []
    for node_id, info in infos.items():
        if not info["description"]:
            problems.append(f"{node_id} has no description")
        for name, tip in tooltips(info):
            if not tip:
                problems.append(f"{node_id}.{name} has no tooltip")
            elif len(tip) > TOOLTIP_LIMIT:
                problems.append(f"{node_id}.{name}: {len(tip)} characters (at most {TOOLTIP_LIMIT}): {tip!r}")
            elif re.search(r"\bdB\b", tip):
                problems.append(f"{node_id}.{name} quotes a dB figure: {tip!r}")
    return problems


def test_every_tooltip_is_short_and_free_of_test_model_figures(runtime):
    infos = pack_node_infos(runtime)
    assert sum(1 for info in infos.values() for _ in tooltips(info)) > 40
    assert tooltip_problems(infos) == []


def test_the_tooltip_check_fails_on_a_tooltip_grown_past_the_limit(runtime):
    infos = copy.deepcopy(pack_node_infos(runtime))
    infos["AdaCachePatchModel"]["input"]["optional"]["preset"][1]["tooltip"] += "x" * TOOLTIP_LIMIT
    assert [p.split(":")[0] for p in tooltip_problems(infos)] == ["AdaCachePatchModel.preset"]


def sections(text: str) -> dict[str, str]:
    """'## Title' -> the text up to the next '## '."""
    parts = re.split(r"^## +(.+)$", text, flags=re.M)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2])}


def test_readme_says_how_to_install_into_ones_own_comfyui():
    text = README.read_text()
    assert len(text.encode()) <= README_LIMIT, f"README.md is {len(text.encode())} bytes; move details into docs/"
    install = next((body for title, body in sections(text).items() if title.lower().startswith("install")), None)
    assert install is not None, "README.md has no '## Install...' section"
    for needed in ("custom_nodes", "git clone", "pip install -r requirements.txt",
                   r"python_embeded\python.exe -m pip install -r", "restart", "template"):
        assert needed in install, f"the install section does not say {needed!r}"
    developers = sections(text).get("For developers", "")
    assert "bash tools/demo.sh" in developers and "bash tools/test.sh" in developers


def relative_links(path: Path) -> list[str]:
    text = path.read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r'src="([^"]+)"', text)
    return [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


@pytest.mark.parametrize("path", [README, *sorted((REPO / "docs").glob("*.md"))], ids=lambda p: p.name)
def test_every_relative_link_points_to_a_file(path):
    missing = [t for t in relative_links(path) if t and not (path.parent / t).exists()]
    assert missing == [], f"{path.name} links to files that do not exist: {missing}"


def test_the_front_end_moves_and_renames_saved_values_as_the_server_does(runtime):
    """web/saved_workflows.js repeats the server's tables: the widget orders, the defaults, the renamed presets."""
    script = (REPO / "web" / "saved_workflows.js").read_text()
    renamed = json.loads(re.search(r"const RENAMED_PRESETS = (\{.*\});", script).group(1))
    knob_first = json.loads(re.search(r"const KNOB_FIRST = (\{.*\});", script).group(1))
    core, patch_model = runtime.pack.adacache_core, runtime.pack.nodes.patch_model
    assert renamed == core.codebooks.RENAMED_PRESETS
    assert knob_first == {"before": list(patch_model.WIDGET_ORDER_BEFORE_KNOB_FIRST), "now": list(patch_model.WIDGETS),
                          "defaults": {name: s.default for name, s in core.config.PATCH_SETTINGS.items()}}
    assert set(patch_model.WIDGETS) == set(core.config.PATCH_SETTINGS) == set(patch_model.WIDGET_ORDER_BEFORE_KNOB_FIRST)
