// Shows the Cache Schedule Viewer's summary text on the node after it runs (the chart image is
// shown by ComfyUI itself, from the node's "images" UI output).
import { app } from "../../scripts/app.js";
import { ComfyWidgets } from "../../scripts/widgets.js";

const WIDGET = "adacache_summary";

app.registerExtension({
    name: "AdaCache.ScheduleViewer",
    async beforeRegisterNodeDef(nodeType, nodeData) {
        if (nodeData.name !== "AdaCacheScheduleViewer") return;
        const onExecuted = nodeType.prototype.onExecuted;
        nodeType.prototype.onExecuted = function (message) {
            onExecuted?.apply(this, arguments);
            const text = (message?.text ?? []).join("\n");
            let widget = this.widgets?.find((w) => w.name === WIDGET);
            if (!widget) {
                widget = ComfyWidgets.STRING(this, WIDGET, ["STRING", { multiline: true }], app).widget;
                widget.inputEl.readOnly = true;
                widget.inputEl.style.opacity = 0.85;
                widget.serialize = false;  // display only: not saved as a widget value
            }
            widget.value = text;
            this.setDirtyCanvas(true, true);
        };
    },
});
