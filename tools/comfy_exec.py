"""Run API prompts through ComfyUI's real execution engine, headless (no HTTP server)."""
from __future__ import annotations

import asyncio
import time
import uuid


class _Recorder:
    """What PromptExecutor needs of the server; keeps its messages with the time they came."""

    client_id = "headless"
    last_node_id = None
    last_prompt_id = None

    def __init__(self):
        self.events: list[tuple[float, str, dict]] = []

    def send_sync(self, event, data, sid=None):
        self.events.append((time.perf_counter(), event, data))

    def node_seconds(self) -> dict[str, float]:
        """Seconds each executed node took, from the engine's progress_state messages
        (the time a node is first reported running to the time it is first reported finished)."""
        started, finished = {}, {}
        for t, event, data in self.events:
            if event != "progress_state":
                continue
            for node, state in data.get("nodes", {}).items():
                if state.get("state") == "running":
                    started.setdefault(node, t)
                elif state.get("state") == "finished":
                    finished.setdefault(node, t)
        return {node: finished[node] - started[node] for node in started if node in finished}


def validate(prompt: dict) -> tuple[bool, dict, list[str], dict]:
    """ComfyUI's own prompt validation: (valid, error, output node ids, per-node errors)."""
    import execution

    valid, error, outputs, node_errors = asyncio.run(execution.validate_prompt(str(uuid.uuid4()), prompt, None))
    return valid, error, outputs, node_errors


def execute(prompt: dict, executor=None):
    """Validate and execute ``prompt`` with a fresh executor (no cached node outputs), or with ``executor``
    from an earlier call, whose cached node outputs ComfyUI then reuses as a server does between prompts.

    Returns the executor; ``executor.server.node_seconds()`` gives per-node times.
    """
    import execution

    valid, error, outputs, node_errors = validate(prompt)
    if not valid:
        raise RuntimeError(f"ComfyUI refused the prompt: {error} {node_errors}")
    # As main.py does; cache_args must be given (0.3.75 reads cache_args["ram"] unconditionally).
    executor = executor or execution.PromptExecutor(_Recorder(), cache_type=execution.CacheType.CLASSIC,
                                                    cache_args={"lru": 0, "ram": 0, "ram_inactive": 0})
    executor.execute(prompt, str(uuid.uuid4()), {}, outputs)
    if not executor.success:
        errors = [data for event, data in executor.status_messages if event == "execution_error"]
        raise RuntimeError(f"ComfyUI failed to execute the prompt: {errors}")
    return executor
