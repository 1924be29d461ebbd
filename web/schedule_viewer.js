// Shows the Cache Schedule Viewer's summary text, and AdaCache Compare's verdict, on the node after it
// runs (the picture is shown by ComfyUI itself, from the node's "images" UI output).
//
// Hooks: the API's "executed" event for a run in this tab, and the extension hook
// onNodeOutputsUpdated for outputs the front end restores (a reopened workflow or queue item).
// Patching nodeType.prototype.onExecuted, which the front end's extension docs call deprecated, is
// not used; neither are modules the front end marks internal (scripts/widgets.js warns on import).
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const NODE_TYPES = new Set(["AdaCacheScheduleViewer", "AdaCacheCompare"]);

const WIDGET = "adacache_summary";
const LINE_HEIGHT = 15;  // px, matches the textarea's font below
const CHAR_WIDTH = 6.7;  // px, about one character of 11px monospace

const MIN_WIDTH = 640;  // px: a newly placed viewer or Compare shows its picture at least about 600 px wide

// Lines the text takes once wrapped to the node's width. The shipped workflows place these nodes MIN_WIDTH wide;
// one saved narrower widens to MIN_WIDTH after its first run (and may then cover a neighbour).
function wrappedLines(text, widthPx) {
    const perLine = Math.max(20, Math.floor((widthPx - 16) / CHAR_WIDTH));
    return text.split("\n").reduce((n, line) => n + Math.max(1, Math.ceil(line.length / perLine)), 0);
}

function summaryWidget(node) {
    let widget = node.widgets?.find((w) => w.name === WIDGET);
    if (widget) return widget;
    const area = document.createElement("textarea");
    area.readOnly = true;
    area.spellcheck = false;
    area.className = "comfy-multiline-input adacache-summary";
    Object.assign(area.style, {
        font: `11px/${LINE_HEIGHT}px monospace`, whiteSpace: "pre-wrap", overflow: "auto",
        resize: "none", opacity: "0.9", boxSizing: "border-box", width: "100%",
    });
    widget = node.addDOMWidget(WIDGET, "adacache_summary", area, {
        getValue: () => area.value,
        setValue: (v) => { area.value = v ?? ""; },
        // Tall enough for every line of the summary, so nothing hides behind a scrollbar.
        getMinHeight: () => (wrappedLines(area.value, node.size[0]) + 1) * LINE_HEIGHT + 8,
        serialize: false,  // display only: not saved as a widget value
    });
    return widget;
}

function showSummary(node, text) {
    const widget = summaryWidget(node);
    widget.value = (text ?? []).join("\n");
    // Grow the node downwards to fit the text; the chart preview takes what is left below it.
    const [w, h] = node.computeSize();
    node.setSize([Math.max(node.size[0], w), Math.max(node.size[1], h + 260)]);
    node.setDirtyCanvas(true, true);
}

// The viewer node an output belongs to (by the node id of the root graph), or null.
function viewerNode(id) {
    const node = app.graph?.getNodeById(Number(id)) ?? app.graph?.getNodeById(id);
    return NODE_TYPES.has(node?.type) ? node : null;
}

app.registerExtension({
    name: "AdaCache.ScheduleViewer",
    beforeRegisterNodeDef(nodeType, nodeData) {
        if (!NODE_TYPES.has(nodeData?.name)) return;
        // the size LiteGraph gives a newly placed node, and the least one after a run: at least MIN_WIDTH wide
        const computeSize = nodeType.prototype.computeSize;
        nodeType.prototype.computeSize = function (...args) {
            const size = computeSize.apply(this, args);
            return [Math.max(size[0], MIN_WIDTH), size[1]];
        };
    },
    setup() {
        api.addEventListener("executed", ({ detail }) => {
            const node = viewerNode(detail?.display_node ?? detail?.node);
            if (node && detail.output?.text) showSummary(node, detail.output.text);
        });
    },
    onNodeOutputsUpdated(nodeOutputs) {
        for (const [id, output] of Object.entries(nodeOutputs ?? {})) {
            const node = viewerNode(id);
            if (node && output?.text) showSummary(node, output.text);
        }
    },
});
