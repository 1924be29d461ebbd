// Workflows saved before the presets were renamed show the new name of their preset on the canvas
// (the server reads the old names too: adacache_core/config.py, RENAMED_PRESETS, which this table
// repeats; tests/test_texts.py checks that the two agree).
import { app } from "../../scripts/app.js";

const PATCH_NODES = new Set(["AdaCachePatchModel", "AdaCachePatchModelRaylight"]);
const RENAMED_PRESETS = {"fast (paper, 30 steps)": "paper: fastest (fast, 30 steps)", "paper (100 steps)": "paper: middle (100 steps)", "slow (paper, 30 steps)": "paper: slowest (slow, 30 steps)"};

app.registerExtension({
    name: "AdaCache.RenamedPresets",
    loadedGraphNode(node) {
        if (!PATCH_NODES.has(node.type)) return;
        const widget = node.widgets?.find((w) => w.name === "preset");
        if (widget && Object.hasOwn(RENAMED_PRESETS, widget.value)) widget.value = RENAMED_PRESETS[widget.value];
    },
});
