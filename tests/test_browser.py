"""End to end in the real ComfyUI front end: the pinned ComfyUI server with the front-end package
version it requires, this pack installed in its custom_nodes/, and headless Debian Chromium driven
by Playwright (see tests/browser_harness.py for how the server is set up).

Checks what an artist does: find the nodes by name in the node search and the node library, read
input tooltips, drop each workflow file on the canvas (no missing-node dialog, no warning, every
widget value valid; a workflow saved with the presets' old names shows the new ones), and run the
tiny-model demo until the Cache Schedule Viewer shows its picture (the overview: headline, blue
computed and grey reused steps; then the engineering picture) and summary on the node. Screenshots go to output/browser/ (a CI artifact; output/ is ignored).

Without Chromium or Playwright the module skips with the reason, except under CI (CI=true), where
it fails: CI must run it. `bash tools/setup_env.sh` installs both.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
import time

import helpers as h
import pytest

from adacache_core.codebooks import RENAMED_PRESETS
from browser_harness import ARTIFACTS, WORKFLOWS, ComfyServer, find_chromium

DEMO = next(p for p in WORKFLOWS if p.name == "adacache_demo_tiny_model.json")
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
RUN_TIMEOUT_MS = 240_000  # the demo takes 10-30 s on two CPU cores; generous for a loaded runner


def _unavailable(reason: str):
    hint = "Run `bash tools/setup_env.sh` (installs Debian's chromium and Playwright into .venv)."
    if IN_CI:
        pytest.fail(f"browser test cannot run: {reason}. {hint}", pytrace=False)
    pytest.skip(f"{reason}; {hint}")


# The front end the ComfyUI under test pins, and a newer one users get with a newer ComfyUI (the newest on
# the package index when checked, 2026-11-25). tools/setup_env.sh installs both.
NEWER_FRONTEND = "1.58.1"


def _front_end_version(param: str) -> str:
    from tools.comfy_runtime import find_comfyui, required_front_end

    return required_front_end(find_comfyui()) if param == "pinned" else param


@pytest.fixture(scope="module", params=["pinned", NEWER_FRONTEND])
def front_end(request) -> str:
    from tools.comfy_runtime import front_end_root

    if request.param != "pinned" and os.environ.get("COMFYUI_PATH"):
        pytest.skip(f"front end {NEWER_FRONTEND} is tested with the pinned ComfyUI; with COMFYUI_PATH, the front end "
                    "that ComfyUI requires")
    root = front_end_root(_front_end_version(request.param))
    if root is not None and not root.is_dir():
        _unavailable(f"front end {_front_end_version(request.param)} is not installed at {root}")
    return request.param


@pytest.fixture(scope="module")
def server(tmp_path_factory, front_end):
    from tools.comfy_runtime import find_comfyui

    from tools.comfy_runtime import front_end_root

    root = front_end_root(_front_end_version(front_end))
    with ComfyServer(tmp_path_factory.mktemp("comfyui-server"), find_comfyui(), front_end_root=root) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser():
    chromium = find_chromium()
    if chromium is None:
        env = os.environ.get("ADACACHE_CHROMIUM")
        _unavailable(f"ADACACHE_CHROMIUM={env} is not an executable" if env else
                     "Debian's chromium is not installed (no `chromium` on PATH, ADACACHE_CHROMIUM not set)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the Python package `playwright` is not installed")
    with sync_playwright() as pw:
        try:
            b = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        except Exception as e:  # noqa: BLE001 - the message names the cause (missing libraries, bad binary)
            pytest.fail(f"could not start {chromium} headless through Playwright: {e}", pytrace=False)
        try:
            yield b
        finally:
            b.close()


class Page:
    """One front-end tab, with what the page logged."""

    def __init__(self, page, server):
        self.page, self.server = page, server
        self.console: list[str] = []
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))

    def __getattr__(self, name):
        return getattr(self.page, name)

    def problems_since(self, start: int) -> list[str]:
        """Errors/warnings logged since console[start], less failed loads of blocked or absent files
        (the page may not reach the internet; the optional templates package is not installed)."""
        return [m for m in self.console[start:]
                if m.startswith(("error", "warning", "pageerror")) and "Failed to load resource" not in m]

    def open_overlays(self) -> list[str]:
        """Text of visible dialogs and toasts (missing nodes, invalid workflow, execution errors)."""
        return self.page.evaluate("""() => [...document.querySelectorAll('.p-dialog, .p-toast-message, [data-testid=error-overlay]')]
            .filter(e => e.offsetParent !== null || getComputedStyle(e).position === 'fixed')
            .map(e => e.innerText.trim().slice(0, 500))""")

    def close_overlays(self):
        for _ in range(5):
            if not self.open_overlays():
                return
            self.page.keyboard.press("Escape")
            closers = self.page.locator(".p-toast-close-button").all() + self.page.locator(
                "[data-testid=error-overlay]").get_by_role("button", name=re.compile("close|dismiss", re.I)).all()
            for b in closers:
                with contextlib.suppress(Exception):
                    b.click(timeout=1000)
            self.page.wait_for_timeout(300)

    def to_screen(self, canvas_pos) -> tuple[float, float]:
        """Graph coordinates -> page coordinates (through the canvas' pan and zoom)."""
        return tuple(self.page.evaluate("""(p) => { const c = app.canvas.ds.convertOffsetToCanvas(p);
            const r = app.canvas.canvas.getBoundingClientRect(); return [r.left + c[0], r.top + c[1]]; }""", canvas_pos))

    def drop_file(self, name: str, text: str):
        """Drop a workflow file on the canvas, as dragging it from the file manager does."""
        self.page.evaluate("""([name, text]) => {
            const dt = new DataTransfer();
            dt.items.add(new File([text], name, {type: 'application/json'}));
            const canvas = app.canvas.canvas, r = canvas.getBoundingClientRect();
            const at = {bubbles: true, cancelable: true, dataTransfer: dt,
                        clientX: r.left + r.width / 2, clientY: r.top + r.height / 2};
            for (const type of ['dragenter', 'dragover', 'drop']) canvas.dispatchEvent(new DragEvent(type, at));
        }""", [name, text])

    def screenshot_to(self, name: str, **kw) -> str:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path), **kw)
        return str(path)


@pytest.fixture(scope="module")
def page(browser, server):  # the browser first: no server start when it is missing
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    raw = context.new_page()
    raw.set_default_timeout(60_000)
    # Loopback only: the front end also asks api.comfy.org for release notes; that must not matter.
    raw.route(lambda url: not url.startswith(server.url), lambda route: route.abort())
    pg = Page(raw, server)
    raw.goto(server.url + "/")
    raw.wait_for_function("""() => window.app?.graph && window.app.canvas
        && window.LiteGraph?.registered_node_types?.AdaCacheScheduleViewer
        && window.app.extensions?.some(e => e.name === 'AdaCache.ScheduleViewer')""", timeout=90_000)
    raw.wait_for_timeout(1000)  # let the first-load dialogs and toasts settle
    pg.close_overlays()
    yield pg
    context.close()


@contextlib.contextmanager
def snapshot_on_failure(page, name):
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            print("screenshot of the failure:", page.screenshot_to(f"FAILED-{name}.png"))
            print("page console (last 40):\n" + "\n".join(page.console[-40:]))
            print("server log:\n" + page.server.log_tail(40))
        raise


@pytest.fixture(scope="module")
def pack_nodes(server):
    """id -> node definition (from /object_info) for every node this pack registers."""
    info = server.get_json("/object_info")
    nodes = {k: v for k, v in info.items() if v.get("python_module", "").endswith("ComfyUI-AdaCache")}
    assert {"AdaCachePatchModel", "AdaCacheMoRegSettings", "AdaCacheScheduleViewer"} <= set(nodes)
    return nodes


def _inputs(node_def):
    for section in ("required", "optional"):
        for name, spec in node_def["input"].get(section, {}).items():
            yield name, (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})


def _new_blank_workflow(page):
    page.evaluate("app.graph.clear(); app.canvas.ds.offset = [0, 0]; app.canvas.ds.scale = 1; app.canvas.setDirty(true, true)")


def test_front_end_is_the_version_asked_for(page, front_end):
    assert page.evaluate("window.__COMFYUI_FRONTEND_VERSION__") == _front_end_version(front_end)


def test_nodes_are_found_by_display_name_in_search_and_library(page, pack_nodes):
    from playwright.sync_api import expect

    with snapshot_on_failure(page, "search"):
        registered = page.evaluate("""(ids) => ids.map(id => [id, LiteGraph.registered_node_types[id]?.title ?? null])""",
                                   list(pack_nodes))
        assert {i: t for i, t in registered} == {i: d["display_name"] for i, d in pack_nodes.items()}

        # The search box, as an artist opens it: double-click the empty canvas, type the name, Enter.
        for node_id, node_def in pack_nodes.items():
            _new_blank_workflow(page)
            # the search box: "Search Nodes..." up to front end 1.32, "Add a node..." in 1.58
            box = page.locator('input[placeholder="Search Nodes..."], input[placeholder="Add a node..."]')
            for _ in range(3):  # LiteGraph times double-clicks itself: a click right after the last one may not count
                page.wait_for_timeout(500)
                page.mouse.dblclick(700, 500)
                with contextlib.suppress(Exception):
                    box.wait_for(state="visible", timeout=3_000)
                    break
            box.wait_for(state="visible", timeout=1_000)
            box.fill(node_def["display_name"])
            # The top result (retried while the list filters as typed) is the node, under its display name; clicked
            # (front end 1.43's Enter may add another result than the top one while the list settles).
            top = page.locator("[role=option]:not(.p-autocomplete-input-chip)").first
            expect(top).to_contain_text(node_def["display_name"], timeout=10_000)
            page.wait_for_timeout(300)
            assert top.inner_text().replace("\xa0", " ").strip().splitlines()[0].strip() == node_def["display_name"]
            top.click()
            page.wait_for_function("app.graph.nodes.length === 1", timeout=10_000)
            assert page.evaluate("[app.graph.nodes[0].type, app.graph.nodes[0].title]") == [node_id, node_def["display_name"]]
            if node_id in ("AdaCacheScheduleViewer", "AdaCacheCompare"):  # placed wide enough for their pictures
                assert page.evaluate("app.graph.nodes[0].size[0]") >= 600

        # The node library sidebar: the AdaCache category (and its demo subfolder) lists every node
        # under its display name.
        library = page.locator(".node-library-tab-button").or_(page.get_by_role("button", name=re.compile(r"^Node Library"))).first
        library.click()
        folders = sorted({tuple(d["category"].split("/")) for d in pack_nodes.values()}, key=len)
        opened = set()
        for path in folders:
            for depth in range(1, len(path) + 1):
                if path[:depth] not in opened:
                    tree_item(page, path[depth - 1], depth).click()
                    opened.add(path[:depth])
        for node_def in pack_nodes.values():
            expect(tree_item(page, node_def["display_name"])).to_be_visible(timeout=10_000)
        page.screenshot_to("node_library.png")
        library.click()  # close the sidebar again


def tree_item(page, label: str, depth: int | None = None):
    """A node library entry: named by aria-label up to front end 1.32, by its text in 1.58."""
    level = "" if depth is None else f'[aria-level="{depth}"]'
    by_label = page.locator(f'[role=treeitem]{level}[aria-label="{label}"]')
    by_text = page.locator(f"[role=treeitem]{level}").filter(has=page.get_by_text(label, exact=True))
    return by_label.or_(by_text).first


def test_every_input_has_a_tooltip_and_hovering_shows_it(page, pack_nodes):
    without = [f"{n}.{i}" for n, d in pack_nodes.items() for i, opts in _inputs(d) if not opts.get("tooltip")]
    assert without == [], "inputs without a tooltip"

    with snapshot_on_failure(page, "tooltip"):
        viewer = pack_nodes["AdaCacheScheduleViewer"]
        tips = dict(_inputs(viewer))
        _new_blank_workflow(page)
        page.evaluate("""() => { const n = LiteGraph.createNode('AdaCacheScheduleViewer'); n.pos = [300, 300];
            app.graph.add(n); app.canvas.setDirty(true, true); }""")
        page.wait_for_timeout(300)
        targets = {  # a socket input and a widget input, where the pointer rests on each
            "model": page.evaluate("(() => { const n = app.graph.nodes[0]; return n.getConnectionPos(true, n.findInputSlot('model')); })()"),
            "filename_prefix": page.evaluate("""(() => { const n = app.graph.nodes[0]; const w = n.widgets.find(w => w.name === 'filename_prefix');
                return [n.pos[0] + n.size[0] / 2, n.pos[1] + w.y + 10]; })()"""),
        }
        tooltip = page.locator(".node-tooltip")
        for name, pos in targets.items():
            x, y = page.to_screen(pos)
            page.mouse.move(x - 60, y - 60)
            page.mouse.move(x, y, steps=5)
            tooltip.filter(has_text=tips[name]["tooltip"]).wait_for(state="visible", timeout=10_000)
        page.screenshot_to("tooltip.png")
        page.mouse.move(5, 500)


def _patch_model_widgets(pack_nodes) -> tuple[list[str], dict]:
    """Patch Model's widget names in order and their defaults, as the server says (/object_info)."""
    node = pack_nodes["AdaCachePatchModel"]
    names = [n for section in ("required", "optional") for n in node["input_order"].get(section, [])]
    specs = {n: s for section in ("required", "optional") for n, s in node["input"].get(section, {}).items()}
    widgets = [n for n in names if isinstance(specs[n][0], list) or specs[n][0] in ("FLOAT", "INT", "STRING", "BOOLEAN", "COMBO")
               and not specs[n][1].get("forceInput")]
    return widgets, {n: specs[n][1].get("default") for n in widgets}


def _widget_order_before_knob_first() -> list[str]:
    """The old order, from the front end's table (tests/test_texts.py checks it equals nodes/patch_model.py's)."""
    script = (Path(__file__).resolve().parent.parent / "web" / "saved_workflows.js").read_text()
    return json.loads(re.search(r"const KNOB_FIRST = (\{.*\});", script).group(1))["before"]


def _as_loaded(workflow, pack_nodes) -> dict:
    """node id -> the widget values the front end should make of a saved workflow: Patch Model's saved before the
    knob came first moved to the server's order (defaults for what the file predates), a renamed preset renamed."""
    names, defaults = _patch_model_widgets(pack_nodes)
    out = {}
    for node in workflow["nodes"]:
        values = node.get("widgets_values")
        if node["type"].startswith("AdaCachePatchModel") and isinstance(values, list) and isinstance(values[0], str):
            saved = dict(zip(_widget_order_before_knob_first(), values))
            saved["preset"] = RENAMED_PRESETS.get(saved["preset"], saved["preset"])
            values = [saved.get(name, defaults[name]) for name in names]
        out[str(node["id"])] = values
    return out


def _check_loaded_graph(page, workflow, pack_nodes):
    """What the front end made of the workflow: node types known, widget values kept (as _as_loaded
    says) and valid."""
    return page.evaluate("""([wf, expectedById]) => {
        const out = [];
        const byId = new Map(app.graph.nodes.map(n => [String(n.id), n]));
        const subgraphs = new Set((wf.definitions?.subgraphs || []).map(sg => sg.id));  // a subgraph node's type
        for (const sg of wf.definitions?.subgraphs || [])
            for (const inner of sg.nodes || [])
                if (!LiteGraph.registered_node_types[inner.type] && !subgraphs.has(inner.type))
                    out.push(`node ${inner.id} of subgraph ${sg.name}: unknown type ${inner.type}`);
        for (const saved of wf.nodes) {
            const n = byId.get(String(saved.id));
            if (!n) { out.push(`node ${saved.id} (${saved.type}) was not created`); continue; }
            if (!LiteGraph.registered_node_types[saved.type] && !subgraphs.has(saved.type))
                out.push(`node ${saved.id}: unknown type ${saved.type}`);
            if (n.has_errors) out.push(`node ${saved.id} (${saved.type}) is marked as having errors`);
            // What saving the workflow again would write. It may add values of widgets that only the
            // front end has (LoadImage's upload button); the expected ones must come back unchanged.
            const expected = expectedById[String(saved.id)] || [];
            const values = (n.serialize().widgets_values || []).slice(0, expected.length);
            if (saved.widgets_values && JSON.stringify(values) !== JSON.stringify(expected))
                out.push(`node ${saved.id} (${saved.type}): widget values ${JSON.stringify(values)} != saved ${JSON.stringify(expected)}`);
            for (const w of n.widgets || []) {
                if (w.type === 'combo') {
                    let choices = w.options?.values;
                    if (typeof choices === 'function') choices = choices(w, n);
                    if (!Array.isArray(choices) || !choices.includes(w.value))
                        out.push(`node ${saved.id} (${saved.type}).${w.name}: ${JSON.stringify(w.value)} is not one of its choices`);
                } else if (w.type === 'number' && typeof w.value === 'number') {
                    const {min, max} = w.options || {};
                    if ((min != null && w.value < min) || (max != null && w.value > max))
                        out.push(`node ${saved.id} (${saved.type}).${w.name}: ${w.value} outside [${min}, ${max}]`);
                }
            }
        }
        return out;
    }""", [workflow, _as_loaded(workflow, pack_nodes)])


def test_missing_node_detection_works(page, pack_nodes):
    """The check below must be able to fail: a node type that does not exist raises the dialog."""
    broken = json.loads(DEMO.read_text())
    broken["nodes"][0]["type"] = "AdaCacheNoSuchNode"
    with snapshot_on_failure(page, "missing-node-control"):
        page.close_overlays()
        page.drop_file("broken.json", json.dumps(broken))
        page.wait_for_function("() => document.querySelector('.p-dialog, [data-testid=error-overlay]') !== null", timeout=15_000)
        show = page.page.get_by_role("button", name="Show missing nodes")
        if not any("AdaCacheNoSuchNode" in text for text in page.open_overlays()) and show.count():
            # front end 1.43: a summary, then the side panel's errors list the missing pack (the node's type is
            # folded under "Unknown pack"; _check_loaded_graph below names it)
            show.first.click()
            page.wait_for_function("() => document.body.innerText.includes('Missing Node Packs')", timeout=10_000)
        else:
            assert any("AdaCacheNoSuchNode" in text for text in page.open_overlays()), page.open_overlays()
        assert any("AdaCacheNoSuchNode" in p for p in _check_loaded_graph(page, broken, pack_nodes))
        page.close_overlays()
        assert page.open_overlays() == []


# Nodes of another pack that a workflow needs. The browser's ComfyUI has only this pack in custom_nodes
# (as a user who installed it alone), so the front end must name exactly these as missing, and nothing
# of this pack; the graph itself is validated against Raylight's real node classes in tests/test_workflows.py.
OTHER_PACK_NODES = {"wan2.1_t2v_14B_raylight_adacache.json": {"RayInitializer", "RayUNETLoader", "XFuserKSamplerAdvanced"}}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_drops_onto_the_canvas_without_warnings(page, path, pack_nodes):
    h.needs_comfyui(path.name)
    workflow = json.loads(path.read_text())
    missing = OTHER_PACK_NODES.get(path.name, set())
    with snapshot_on_failure(page, f"load-{path.stem}"):
        page.close_overlays()
        start = len(page.console)
        page.drop_file(path.name, path.read_text())
        page.wait_for_function("(n) => app.graph.nodes.length === n", arg=len(workflow["nodes"]), timeout=15_000)
        page.wait_for_timeout(1500)  # dialogs and toasts come up asynchronously
        overlays = page.open_overlays()
        if missing:  # the pinned front end lists them in a dialog, 1.58 says "Missing Node Packs" in a toast
            assert overlays and all("missing" in o.lower() and "AdaCache" not in o for o in overlays), overlays
            page.close_overlays()
        else:
            assert overlays == [], "the front end raised a dialog or toast on load"
        problems = _check_loaded_graph(page, workflow, pack_nodes)
        assert {p.split("unknown type ")[1] for p in problems if "unknown type " in p} == missing
        assert [p for p in problems if not any(name in p for name in missing)] == []
        assert page.problems_since(start) == []
        page.screenshot_to(f"workflow-{path.stem}.png")


def test_a_workflow_saved_before_the_knob_came_first_keeps_every_value(page, pack_nodes):
    """A workflow saved when Patch Model's widgets began with the preset (under its old name) loads with each
    value in its own setting, read back widget by widget, and the preset under its new name."""
    saved = Path(__file__).resolve().parent / "data" / "adacache_demo_tiny_model_saved_before_preset_rename.json"
    workflow = json.loads(saved.read_text())
    saved_patch = next(n for n in workflow["nodes"] if n["type"] == "AdaCachePatchModel")
    want = dict(zip(_widget_order_before_knob_first(), saved_patch["widgets_values"]))
    want["preset"] = RENAMED_PRESETS[want["preset"]]
    with snapshot_on_failure(page, "saved-before-knob-first"):
        page.close_overlays()
        start = len(page.console)
        page.drop_file(saved.name, saved.read_text())
        page.wait_for_function("(n) => app.graph.nodes.length === n", arg=len(workflow["nodes"]), timeout=15_000)
        page.wait_for_timeout(1500)  # dialogs and toasts come up asynchronously
        assert page.open_overlays() == [] and page.problems_since(start) == []
        assert _check_loaded_graph(page, workflow, pack_nodes) == []
        shown = page.evaluate("""(id) => Object.fromEntries(app.graph.getNodeById(id).widgets
            .map(w => [w.name, w.value]))""", saved_patch["id"])
        assert {name: shown[name] for name in want} == want
        assert list(shown)[:2] == ["target_speedup", "reuse"]  # the knob first on the canvas


def test_demo_runs_and_viewer_shows_chart_and_summary(page, server):
    with snapshot_on_failure(page, "demo-run"):
        page.close_overlays()
        page.drop_file(DEMO.name, DEMO.read_text())
        page.wait_for_function("app.graph.nodes.some(n => n.type === 'AdaCacheScheduleViewer')", timeout=15_000)
        start = len(page.console)
        t0 = time.monotonic()
        page.get_by_role("button", name="Run", exact=True).first.click()  # the Queue/Run button
        page.wait_for_function("""() => { const n = app.graph.nodes.find(n => n.type === 'AdaCacheScheduleViewer');
                return n?.imgs?.length > 0 && n.imgs.every(i => i.complete && i.naturalWidth > 0)
                    && n.widgets?.some(w => w.name === 'adacache_summary' && w.value); }""",
                               timeout=RUN_TIMEOUT_MS, polling=500)
        # The viewer's output arrives while later nodes (SaveAnimatedWEBP) may still run: wait for
        # the queue to drain before reading the prompt's outcome.
        while (queue := server.get_json("/queue"))["queue_running"] or queue["queue_pending"]:
            assert time.monotonic() - t0 < RUN_TIMEOUT_MS / 1000, f"the prompt is still running: {queue}"
            time.sleep(0.5)
        print(f"demo run finished in the browser after {time.monotonic() - t0:.1f} s")
        history = server.get_json("/history")
        assert history and all(h["status"]["status_str"] == "success" for h in history.values()), history
        assert page.open_overlays() == [] or all("error" not in t.lower() for t in page.open_overlays())

        viewer = page.evaluate("""() => { const n = app.graph.nodes.find(n => n.type === 'AdaCacheScheduleViewer');
            const w = n.widgets.find(w => w.name === 'adacache_summary');
            return {summary: w.value, shown: w.element ? w.element.value : null,
                    visible: !!w.element && w.element.offsetParent !== null,
                    image: [n.imgs[0].naturalWidth, n.imgs[0].naturalHeight], src: n.imgs[0].src, width: n.size[0]}; }""")
        assert viewer["summary"] == viewer["shown"]  # the textarea on the node holds the summary
        assert viewer["width"] >= 600  # the picture is drawn across the node's width
        assert viewer["visible"]
        assert "steps computed" in viewer["summary"] and "speed-up" in viewer["summary"]
        assert "steps chosen by the speed knob" in viewer["summary"]
        compare = page.evaluate("""() => app.graph.nodes.find(n => n.type === 'AdaCacheCompare')
            .widgets.find(w => w.name === 'adacache_summary').value""")
        assert compare.splitlines()[0] in VERDICTS and "frames: PSNR" in compare, compare  # AdaCache Compare's sentence
        assert "/view?" in viewer["src"]
        # The overview: a headline over one row of steps (cond and uncond computed the same steps),
        # computed steps in blue, reused in grey, nothing in the red that read as an error.
        assert viewer["image"] == [1200, 210]
        colours = _viewer_picture_colours(page)
        assert colours["computed"] > 0.03 and colours["reused"] > 0.01 and colours["red"] == 0, colours
        assert [p for p in page.problems_since(start) if "AdaCache" in p or "schedule_viewer" in p] == []

        page.screenshot_to("demo_workflow.png")
        print("viewer screenshot:", _screenshot_viewer(page, "viewer.png"))

        # The engineering picture on the same run: only the viewer runs again.
        page.evaluate("""() => { const n = app.graph.nodes.find(n => n.type === 'AdaCacheScheduleViewer');
            n.widgets.find(w => w.name === 'detail').value = 'engineering'; }""")
        page.get_by_role("button", name="Run", exact=True).first.click()
        page.wait_for_function("""() => { const n = app.graph.nodes.find(n => n.type === 'AdaCacheScheduleViewer');
                return n?.imgs?.length > 0 && n.imgs[0].complete && n.imgs[0].naturalHeight === 720; }""",
                               timeout=RUN_TIMEOUT_MS, polling=500)
        colours = _viewer_picture_colours(page)
        # the demo has no MoReg Settings (they act only at knob 0): no MoReg line
        assert colours["computed"] > 0.01 and colours["moreg"] == 0 and colours["red"] == 0, colours
        print("engineering screenshot:", _screenshot_viewer(page, "viewer_engineering.png"))

        # Turning the knob reruns only the AdaCache branch: ComfyUI's cache keeps the uncached sampler's result.
        ids = page.evaluate("""() => { const n = app.graph.nodes.find(n => n.type === 'AdaCachePatchModel');
            n.widgets.find(w => w.name === 'target_speedup').value = 3;
            const samplers = app.graph.nodes.filter(s => s.type === 'KSampler');
            const uncached = samplers.find(s => s.title.includes('uncached'));
            return {uncached: String(uncached.id), adacache: String(samplers.find(s => s !== uncached).id)}; }""")
        before = set(server.get_json("/history"))
        page.get_by_role("button", name="Run", exact=True).first.click()
        t0 = time.monotonic()
        while not (set(server.get_json("/history")) - before) or server.get_json("/queue")["queue_running"]:
            assert time.monotonic() - t0 < RUN_TIMEOUT_MS / 1000, "the prompt with the knob at 3 did not finish"
            time.sleep(0.5)
        (latest,) = (h for k, h in server.get_json("/history").items() if k not in before)
        cached = next(d["nodes"] for e, d in latest["status"]["messages"] if e == "execution_cached")
        assert ids["uncached"] in cached and ids["adacache"] not in cached, (ids, cached)


VERDICTS = ("The same to the eye.", "Small differences in fine detail; look at the difference picture.",
            "Visible changes: compare the frames (lower target_speedup for a result closer to the uncached one).")

# The viewer's colours (adacache_core/chart.py): computed, reused, MoReg's line (engineering only), and
# the red the chart used for computed steps before.
PICTURE_COLOURS = {"computed": "#2f6db5", "reused": "#c5cad3", "moreg": "#e76f51", "red": "#d1495b"}


def _viewer_picture_colours(page) -> dict[str, float]:
    """The share of the viewer's shown picture in each of PICTURE_COLOURS (read back from its pixels)."""
    return page.evaluate("""(colours) => { const n = app.graph.nodes.find(n => n.type === 'AdaCacheScheduleViewer');
        const img = n.imgs[0], c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
        const px = ctx.getImageData(0, 0, c.width, c.height).data, out = {};
        for (const [name, hex] of Object.entries(colours)) {
            const [r, g, b] = [1, 3, 5].map(i => parseInt(hex.slice(i, i + 2), 16));
            let hits = 0;
            for (let i = 0; i < px.length; i += 4)
                if (Math.abs(px[i] - r) < 4 && Math.abs(px[i + 1] - g) < 4 && Math.abs(px[i + 2] - b) < 4) hits++;
            out[name] = hits / (px.length / 4);
        }
        return out; }""", PICTURE_COLOURS)


def _screenshot_viewer(page, name: str) -> str:
    """The viewer node alone, moved clear of the others and widened so its picture reads, centred at
    100 % zoom (docs/, CI artifact)."""
    box = page.evaluate("""() => { const n = app.graph.nodes.find(n => n.type === 'AdaCacheScheduleViewer');
        const others = app.graph.nodes.filter(o => o !== n);
        n.pos = [Math.max(...others.map(o => o.pos[0] + o.size[0])) + 200, n.pos[1]];
        const img = n.imgs[0];
        n.setSize([720, n.size[1]]);  // the summary's height follows the width
        n.setSize([720, n.computeSize()[1] + 720 * img.naturalHeight / img.naturalWidth + 40]);
        const c = app.canvas.canvas.getBoundingClientRect(), t = LiteGraph.NODE_TITLE_HEIGHT;
        app.canvas.ds.scale = 1;
        app.canvas.ds.offset = [c.width / 2 - n.pos[0] - n.size[0] / 2, c.height / 2 - n.pos[1] - n.size[1] / 2 + t / 2];
        app.canvas.deselectAll?.(); app.canvas.setDirty(true, true);
        return [c.left + c.width / 2 - n.size[0] / 2, c.top + c.height / 2 - n.size[1] / 2 - t / 2, n.size[0], n.size[1] + t]; }""")
    page.mouse.move(5, 5)
    page.wait_for_timeout(500)
    m = 8
    return page.screenshot_to(name, clip={"x": box[0] - m, "y": box[1] - m, "width": box[2] + 2 * m, "height": box[3] + 2 * m})
