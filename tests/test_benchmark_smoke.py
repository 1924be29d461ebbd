"""The real-size benchmark script runs (at a tiny size) and its numbers are consistent."""


def test_real_size_benchmark_smoke(runtime):
    from benchmarks_loader import bench_real_size

    result = bench_real_size.main(["--config", "tiny", "--latent", "2x8x8", "--steps", "8", "--easycache", "0.2", "--no-write"])
    rows = {r["row"]: r for r in result["rows"]}
    unpatched, every = rows["unpatched"], rows["AdaCache, every step computed"]
    assert every["block_runs"] == unpatched["block_runs"] == 8 * 4  # 8 steps x 4 blocks, CFG batched
    assert 0 < every["pack_seconds_per_step"] < every["seconds_per_step"]
    for length, expected in ((2, [0, 1, 3, 5, 6, 7]), (3, [0, 1, 4, 6, 7]), (5, [0, 1, 6, 7])):
        for suffix in ("", ", cache offloaded"):
            row = rows[f"AdaCache forced 1000:{length}{suffix}"]
            assert row["computed_steps"] == len(expected)
            assert row["block_runs"] == len(expected) * 4
            assert row["ideal_speedup"] == 8 / len(expected)
            assert row["cache_mb"] == 2 * result["hidden_state_mb"]  # the span's residual and one probe's, not one per block
    assert all(r["seconds"] > 0 and r["peak_rss_mb"] > 0 for r in result["rows"])
    assert rows["EasyCache 0.2"]["computed_steps"] <= 8
