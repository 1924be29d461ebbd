// Workflows saved with earlier versions of the pack load with their values where they belong now. The
// values are fixed before the graph is built from them, so no widget changes while the workflow loads.
//  * Knob first: AdaCache Patch Model's widgets once began with the preset (WIDGET_ORDER_BEFORE_KNOB_FIRST
//    in nodes/patch_model.py); such a file's values move to their settings' new places, and a setting the
//    file predates takes its default (nodes/patch_model.py, saved_widget_values, does the same for the
//    tests' converter; tests/test_texts.py checks that the tables agree).
//  * Renamed presets: a preset saved under its old name shows its new one (the server reads the old names
//    too: adacache_core/config.py, RENAMED_PRESETS).
import { app } from "../../scripts/app.js";

const PATCH_NODES = new Set(["AdaCachePatchModel", "AdaCachePatchModelRaylight"]);
const KNOB_FIRST = {"before": ["preset", "custom_codebook", "probe_blocks", "start_percent", "end_percent", "offload_cache", "target_speedup", "sequence_parallel", "probe_residual", "reuse"], "now": ["target_speedup", "reuse", "preset", "custom_codebook", "probe_blocks", "probe_residual", "start_percent", "end_percent", "offload_cache", "sequence_parallel"], "defaults": {"preset": "paper: fastest (fast, 30 steps)", "custom_codebook": "0.08:6, 0.16:5, 0.24:4, 0.32:3, 0.4:2, 1:1", "probe_blocks": "middle", "start_percent": 0.0, "end_percent": 1.0, "offload_cache": false, "target_speedup": 2.0, "sequence_parallel": "auto", "probe_residual": "block", "reuse": "forecast"}};
const RENAMED_PRESETS = {"fast (paper, 30 steps)": "paper: fastest (fast, 30 steps)", "paper (100 steps)": "paper: middle (100 steps)", "slow (paper, 30 steps)": "paper: slowest (slow, 30 steps)"};

function knobFirst(values) {
    const saved = new Map(KNOB_FIRST.before.slice(0, values.length).map((name, i) => [name, values[i]]));
    const now = KNOB_FIRST.now.map((name) => (saved.has(name) ? saved.get(name) : KNOB_FIRST.defaults[name]));
    const preset = KNOB_FIRST.now.indexOf("preset");
    if (Object.hasOwn(RENAMED_PRESETS, now[preset])) now[preset] = RENAMED_PRESETS[now[preset]];
    return now;
}

app.registerExtension({
    name: "AdaCache.SavedWorkflows",
    beforeConfigureGraph(graphData) {
        const subgraphs = graphData?.definitions?.subgraphs ?? [];
        for (const node of [graphData?.nodes ?? [], ...subgraphs.map((s) => s.nodes ?? [])].flat()) {
            const values = node?.widgets_values;
            // saved before the knob came first: the first value is the preset's name, today the knob's number
            if (PATCH_NODES.has(node?.type) && Array.isArray(values) && typeof values[0] === "string")
                node.widgets_values = knobFirst(values);
        }
    },
});
