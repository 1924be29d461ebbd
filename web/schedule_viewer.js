// Shows the Cache Schedule Viewer's summary text on the node after it runs (the chart image is
// shown by ComfyUI itself, from the node's "images" UI output).
//
// Only the public extension surface is used (app.registerExtension, node.addDOMWidget): importing
// scripts/widgets.js for ComfyWidgets makes the front end warn that it is an internal module.
import { app } from "../../scripts/app.js";

const WIDGET = "adacache_summary";
const LINE_HEIGHT = 15;  // px, matches the textarea's font below
const CHAR_WIDTH = 6.7;  // px, about one character of 11px monospace

// Lines the text takes once wrapped to the node's width (the node is not widened: it would cover
// its neighbours in the workflow's layout).
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

app.registerExtension({
    name: "AdaCache.ScheduleViewer",
    async beforeRegisterNodeDef(nodeType, nodeData) {
        if (nodeData.name !== "AdaCacheScheduleViewer") return;
        const onExecuted = nodeType.prototype.onExecuted;
        nodeType.prototype.onExecuted = function (message) {
            onExecuted?.apply(this, arguments);
            const widget = summaryWidget(this);
            widget.value = (message?.text ?? []).join("\n");
            // Grow the node downwards to fit the text; the chart preview takes what is left below it.
            const [w, h] = this.computeSize();
            this.setSize([Math.max(this.size[0], w), Math.max(this.size[1], h + 260)]);
            this.setDirtyCanvas(true, true);
        };
    },
});
