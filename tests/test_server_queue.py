"""A real ComfyUI server's queue survives what a user can send it: a refused prompt ends, the next one runs.

Over HTTP, as a user's browser or script queues prompts (ComfyUI's main.py on loopback, the demo workflow
shortened to 4 steps on a small latent).
"""
import json
import time
import urllib.error
import urllib.request

import pytest

import helpers as h
from browser_harness import ComfyServer

from tools import comfy_runtime

# A plan whose "architecture" holds a lone surrogate, as plain ASCII JSON: it stopped the server's prompt worker
# (ComfyUI's error handler could not log the refusal that quoted it), and every later prompt waited for ever.
SURROGATE_PLAN = ('{"format": "adacache-plan/1", "architecture": "\\udcff", "blocks": 8, "reuse": "forecast", '
                  '"searched_on": "", "sigmas": [1.0, 0.5, 0.0], "drop_order": [], "psnr": []}')


@pytest.fixture(scope="module")
def server(runtime, tmp_path_factory):  # runtime: the workflow is turned into a prompt with ComfyUI's node list
    with ComfyServer(tmp_path_factory.mktemp("comfyui-queue"), comfy_runtime.find_comfyui()) as srv:
        yield srv


def demo_prompt(**patch_inputs) -> dict:
    prompt = h.short_demo_prompt(4)
    next(n for n in prompt.values() if n["class_type"] == "AdaCachePatchModel")["inputs"].update(patch_inputs)
    return prompt


def queue(server, prompt: dict) -> tuple[int, dict]:
    """POST /prompt: (HTTP status, answer)."""
    request = urllib.request.Request(server.url + "/prompt", data=json.dumps({"prompt": prompt}).encode("ascii"),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def finished(server, prompt_id: str, timeout: float = 120.0) -> dict:
    """The prompt's /history entry once it has ended (success or error); fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry = server.get_json(f"/history/{prompt_id}").get(prompt_id)
        if entry and entry.get("status", {}).get("completed") is not None:
            return entry
        time.sleep(0.5)
    pytest.fail(f"prompt {prompt_id} did not end within {timeout:.0f} s; queue: {server.get_json('/queue')}\n"
                f"{server.log_tail()}")


def test_a_lone_surrogate_in_a_plan_is_refused_and_the_queue_goes_on(server):
    typed = demo_prompt(plan=SURROGATE_PLAN)
    status, answer = queue(server, typed)  # typed into the node: refused at queue time
    assert status == 400 and "holds characters that cannot be shown" in json.dumps(answer), answer

    linked = demo_prompt(plan=["99", 0])  # linked from a String node: refused by the node when it runs
    linked["99"] = {"class_type": "PrimitiveStringMultiline", "inputs": {"value": SURROGATE_PLAN}}
    status, answer = queue(server, linked)
    assert status == 200, answer
    entry = finished(server, answer["prompt_id"])
    assert entry["status"]["status_str"] == "error"
    errors = [data for event, data in entry["status"]["messages"] if event == "execution_error"]
    assert errors and "holds characters that cannot be shown" in errors[0]["exception_message"], errors

    status, answer = queue(server, demo_prompt())  # the queue still runs the next prompt to its end
    assert status == 200, answer
    assert finished(server, answer["prompt_id"])["status"]["status_str"] == "success"
    assert server.get_json("/queue") == {"queue_running": [], "queue_pending": []}
