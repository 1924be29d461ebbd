"""Imports the benchmark scripts (benchmarks/ is a folder of scripts, not a package)."""
import importlib.util
from pathlib import Path

_path = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_real_size.py"
_spec = importlib.util.spec_from_file_location("bench_real_size", _path)
bench_real_size = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_real_size)
