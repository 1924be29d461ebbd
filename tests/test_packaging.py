"""The pack as the Comfy Registry receives it: comfy-cli validates pyproject.toml, and the archive it
packs holds only what a ComfyUI user runs (see .comfyignore)."""
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.once  # tests/conftest.py: the same on every ComfyUI

REPO = Path(__file__).resolve().parent.parent
COMFY_CLI = REPO / ".venv" / "comfy-cli-1.23.0"  # installed by tools/setup_env.sh
SHIPPED = {"__init__.py", "nodes", "adacache_core", "web", "workflows", "demo_models", "pyproject.toml", "README.md",
           "LICENSE", "requirements.txt", ".comfyignore", ".gitignore", "docs", "benchmarks"}


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A clone of the repository's committed state, as the registry's tooling sees it."""
    if not (COMFY_CLI / "comfy_cli").is_dir():
        message = f"comfy-cli is not installed at {COMFY_CLI}; run `bash tools/setup_env.sh`"
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    dst = tmp_path_factory.mktemp("registry") / "comfyui-adacache"
    subprocess.run(["git", "clone", "-q", str(REPO), str(dst)], check=True)
    return dst


def comfy(checkout: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(COMFY_CLI), HOME=str(checkout.parent))
    return subprocess.run([sys.executable, "-m", "comfy_cli", "--skip-prompt", "--no-enable-telemetry", *args],
                          cwd=checkout, env=env, capture_output=True, text=True, timeout=300)


def test_comfy_node_validate_passes(checkout):
    result = comfy(checkout, "node", "validate")
    assert result.returncode == 0 and "validation checks passed" in result.stdout + result.stderr, result.stdout + result.stderr


def test_the_registry_archive_holds_only_what_users_run(checkout):
    result = comfy(checkout, "node", "pack")
    assert result.returncode == 0, result.stdout + result.stderr
    names = zipfile.ZipFile(checkout / "node.zip").namelist()
    assert {n.split("/")[0] for n in names} == SHIPPED
    assert "demo_models/tiny_wan21_motion.safetensors" in names  # the demo model users try
    assert "workflows/wan2.1_t2v_1.3B_adacache.jpg" in names  # thumbnails travel with their workflows
    assert not [n for n in names if n.startswith("demo_models/") and ("heldout" in n or "clips" in n)]  # test models stay out
    assert not [n for n in names if n.startswith("benchmarks/") and n.endswith(".py")]  # the results page, not the scripts


def linked_files(page: Path) -> set[str]:
    """Repository paths of the files a Markdown page links to or shows (not web addresses or anchors)."""
    text = page.read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r'src="([^"]+)"', text)
    return {os.path.normpath(page.parent.relative_to(REPO) / t.split("#")[0])
            for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")}


def test_a_packed_install_holds_what_the_readme_shows_and_links(checkout):
    result = comfy(checkout, "node", "pack")
    assert result.returncode == 0, result.stdout + result.stderr
    names = set(zipfile.ZipFile(checkout / "node.zip").namelist())
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "benchmarks" / "RESULTS.md"]
    wanted = {f for page in pages for f in linked_files(page)}
    assert "docs/schedule_chart.png" in wanted
    assert sorted(wanted - names) == []


def test_pyproject_claims_only_what_is_recorded():
    classifiers = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["classifiers"]
    cuda_runs = [p for p in (REPO / "benchmarks" / "results").glob("*.json") if "cuda" in p.name.lower()]
    assert any("CUDA" in c for c in classifiers) == bool(cuda_runs)  # no CUDA run is recorded (CPU only)
    # LICENSE is the GPL version 3 text with no notice choosing "any later version"
    assert (REPO / "LICENSE").read_text().split()[:5] == ["GNU", "GENERAL", "PUBLIC", "LICENSE", "Version"]
    assert [c for c in classifiers if c.startswith("License")] == ["License :: OSI Approved :: GNU General Public License v3 (GPLv3)"]
