// Workflows saved before the presets were renamed show the new name of their preset on the canvas
// (the server reads the old names too: adacache_core/config.py, RENAMED_PRESETS, which this table
// repeats; tests/test_texts.py checks that the two agree). The saved values are renamed before the
// graph is built from them, so no widget changes while the front end loads the workflow.
import { app } from "../../scripts/app.js";

const PATCH_NODES = new Set(["AdaCachePatchModel", "AdaCachePatchModelRaylight"]);
const RENAMED_PRESETS = {"fast (paper, 30 steps)": "paper: fastest (fast, 30 steps)", "paper (100 steps)": "paper: middle (100 steps)", "slow (paper, 30 steps)": "paper: slowest (slow, 30 steps)"};

app.registerExtension({
    name: "AdaCache.RenamedPresets",
    beforeConfigureGraph(graphData) {
        const subgraphs = graphData?.definitions?.subgraphs ?? [];
        for (const node of [graphData?.nodes ?? [], ...subgraphs.map((s) => s.nodes ?? [])].flat()) {
            const values = node?.widgets_values;
            if (PATCH_NODES.has(node?.type) && Array.isArray(values) && Object.hasOwn(RENAMED_PRESETS, values[0]))
                values[0] = RENAMED_PRESETS[values[0]];
        }
    },
});
