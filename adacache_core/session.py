"""AdaCache attached to one patched model: its settings, the life of each sampling run, and each model call.

The ComfyUI bridge (comfy_bridge.py) installs the session's two wrappers on a cloned ModelPatcher:
  * OUTER_SAMPLE (:meth:`AdaCacheSession.outer_sample_wrapper`): one :class:`RunPlanner` per sampling run
    (fresh state every run), the run's notes, its trace kept for the viewer;
  * APPLY_MODEL (:meth:`AdaCacheSession.apply_model_wrapper`): maps the call's sigma to a step, asks the
    planner compute/reuse (or replays a recorded step), times the call and records it.
The per-block hooks then do the cache's work through :class:`BlockSpans` (block_spans.py); what a measuring
step measures at the probe blocks, and over which process group, is probe.py's job.
"""
from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass, field, replace

import torch

import comfy.model_management

from . import forward_override, sequence_parallel
from .architectures import Architecture, AttentionResidual, BlockList, SideBlocks
from .block_spans import BlockSpans
from .config import AdaCacheConfig
from .planner import RunPlanner
from .probe import NO_ATTENTION_PROBE, ProbeMeasurement
from .replay import Recording, Replay
from .schedule import PLAN_NOT_USED
from .span_memory import SpanMemory, forms_line
from .trace import CallRecord, RunTrace, all_finite, latent_fingerprint, remember_producer

LOG = logging.getLogger("adacache")
RUNS_KEPT = 8  # run data a patched model keeps (the viewer finds the run that produced its samples among them)
BRANCH_NAMES = {0: "cond", 1: "uncond"}
NEW_BRANCH_LAYOUT = "a branch layout (cond/uncond batch) with nothing cached yet"
CONTROLS = "a ControlNet or model patch adds to the blocks' outputs"
_warned: set[str] = set()


def warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        LOG.warning(message)


def _as_given(latent, sample_kwargs: dict):
    """The latent as the sampler's caller gives and gets it: newer ComfyUI packs a latent of several parts (LTX-2's
    video and audio) into one tensor for the run (``latent_shapes``); the parts, so the viewer can match them."""
    shapes = sample_kwargs.get("latent_shapes")
    if not shapes or len(shapes) < 2:
        return latent
    import comfy.utils

    return comfy.utils.unpack_latents(latent, shapes)


@dataclass
class ModelCall:
    """The model call in flight: its run, its branch layout, whether it computes, and the spans' inputs."""

    run: "_Run"

    key: tuple
    computes: bool
    measures: bool
    position: float  # where the call is, for the span memory: its step
    line: bool  # its residual and the previous one may set the forecast's line (span_memory.forms_line)
    grid: tuple[int, int, int] | None
    span_input: dict = field(default_factory=dict)  # block list -> its first block's input (its parts: Architecture.parts)
    span_output: dict = field(default_factory=dict)  # block list -> first block's output (adds_before_blocks)
    image_tokens: int | None = None  # length of this rank's first-list stream: the image tokens it holds
    flat_stream: bool = True  # the stream is (batch, tokens, channels), not split by image axes (Cosmos)


@dataclass
class _Run:
    planner: RunPlanner
    span: SpanMemory  # (block list, branch layout, stream part) -> summed residual of its blocks (and its slope)
    probe: ProbeMeasurement  # the probe blocks' last residuals, the attention catch, the process group
    recording: Recording | None = None  # this run as it goes (AdaCacheSession.record)
    replay: Replay | None = None  # the earlier run whose first steps this one takes back
    conds: dict = field(default_factory=dict)  # a cond's uuid -> its number in the run (the branch layouts' keys)


class AdaCacheSession:
    """AdaCache attached to one patched model: settings, hooks, and the traces of its last runs."""

    def __init__(self, config: AdaCacheConfig, arch: Architecture, num_blocks: int, label: str,
                 patch_size: tuple[int, ...] | None, batch_axis: int = 0):
        self.config = config
        self.patch_size = patch_size
        self.batch_axis = batch_axis
        self.arch = arch
        self.num_blocks = num_blocks
        self.label = label
        self.quiet = False  # True: no console line per run (AdaCache Plan Search samples hundreds; it reports per level)
        self.runs: collections.deque[RunTrace] = collections.deque(maxlen=RUNS_KEPT)
        self.call: ModelCall | None = None
        self._run: _Run | None = None
        self._probes = frozenset(config.probe_blocks)
        self._offload = comfy.model_management.unet_offload_device() if config.offload_cache else None
        # the paper's probe (gated self-attention residual) where the table knows it, else the block's
        self.attention: AttentionResidual | None = arch.attention_residual if config.probe_residual == "attention" else None
        self.spans: BlockSpans | None = None  # the main blocks and the cache's work at each (index_blocks)
        # blocks hooked through their forward: those without replacement, and side blocks
        self.forward_hooks: list[tuple[BlockList | SideBlocks, int, object]] = []  # (list, index, comfy_bridge hook)
        self.record = False  # True: every run is recorded (last_recording), to be replayed in part (replay.py)
        self.last_recording: Recording | None = None
        self._replay_next: Replay | None = None
        self.model_calls_replayed = 0

    def __deepcopy__(self, memo) -> "AdaCacheSession":
        # ModelPatcher.clone() deep-copies model_options (where the session and the block hooks
        # live) but not the wrappers: a later node cloning the model (an SP engine, a LoRA loader)
        # must keep hooks and wrappers on one session, or its blocks would never see a call.
        return self

    def index_blocks(self, blocks: list[tuple[BlockList, int]]) -> None:
        """Number the main blocks in execution order and note where each block list starts and ends."""
        self.spans = BlockSpans(self.arch, blocks, self._probes, self.batch_axis)

    def compute_exactly(self, computed: frozenset[int] | None, replaying: Recording | None = None, until: int = 0) -> None:
        """Make the next runs compute exactly the steps ``computed`` (None: as the settings say again).
        AdaCache Plan Search samples one candidate schedule after another on one patched model so.

        ``replaying``: a recorded run that computed the same steps before ``until``; the next run takes its
        model outputs for those steps instead of calling the model (replay.py)."""
        self.config = replace(self.config, exact_steps=computed)
        self._replay_next = None if replaying is None else Replay(replaying, until)

    @property
    def last_run(self) -> RunTrace | None:
        return self.runs[-1] if self.runs else None

    # -- OUTER_SAMPLE ------------------------------------------------------------------------------
    def outer_sample_wrapper(self, executor, *args, **kwargs):
        guider = executor.class_obj
        sigmas = [float(s) for s in args[3]]
        model_sampling = guider.model_patcher.get_model_object("model_sampling")
        start = float(model_sampling.percent_to_sigma(self.config.start_percent))
        end = float(model_sampling.percent_to_sigma(self.config.end_percent))
        cacheable = [end < s <= start for s in sigmas]
        trace = RunTrace(model=self.label, architecture=self.arch.name, settings=self.config.describe(),
                         steps=max(len(sigmas) - 1, 0), sigmas=sigmas, codebook=[],
                         input_latent=latent_fingerprint(_as_given(args[1], kwargs)))
        planner = RunPlanner(self.config, sigmas, cacheable, trace)
        trace.codebook = list(planner.codebook.entries)
        for note in trace.notes:
            if note.startswith(PLAN_NOT_USED):  # once per model and reason; every run's data keep the note
                warn_once(f"{self.label}:{note}", f"AdaCache [{self.label}]: {note}")
        if not all_finite(args[1]):
            trace.notes.append("NaN or infinite values in the sampler's input latent: the samples hold them too; "
                               "check the node that made the latent")
        if trace.steps < 4:
            note = f"{trace.steps} step(s): the first and last two steps are always computed, nothing to reuse"
            trace.notes.append(note)
            LOG.warning("AdaCache [%s]: %s (this run is as fast as without AdaCache)", self.label, note)
        trace.probe_residual = "attention" if self.attention is not None else "block"
        if self.config.probe_residual == "attention" and self.attention is None:
            trace.notes.append(f"probe_residual 'attention': the table does not know {self.arch.name}'s attention gate, "
                               "so the probe measures the whole block's residual")
        diffusion_model = guider.model_patcher.get_model_object("diffusion_model")
        probe_modules = {}
        if self.attention is not None:
            for probe in self._probes:
                block_list, i = self.spans.blocks[probe]
                block = block_list.modules(diffusion_model)[i]
                probe_modules[probe] = (block, getattr(block, self.attention.module))
        self._run = _Run(planner, SpanMemory(self.config.reuse == "forecast", self._store),
                         ProbeMeasurement(self.config, self.arch, planner, self._store, self.attention, probe_modules,
                                          sequence_parallel.has_sharded_weights(diffusion_model)),
                         Recording() if self.record else None, self._replay_next)
        self._replay_next = None
        overrides = forward_override.install_all((block_list.modules(diffusion_model)[i], hook, block_list.returns)
                                                 for block_list, i, hook in self.forward_hooks)
        output = None
        try:
            output = executor(*args, **kwargs)
            trace.output_latent = latent_fingerprint(_as_given(output, kwargs))
            remember_producer(trace.output_latent, self.label)
            if not all_finite(output):
                trace.notes.append("NaN or infinite values in the samples (the sampler's output)")
                LOG.warning("AdaCache [%s]: the samples hold NaN or infinite values; see the run's notes", self.label)
            return output
        finally:
            forward_override.remove_all(overrides)
            self.call = None
            run, self._run = self._run, None
            trace = run.planner.finish(completed=output is not None)
            if run.recording is not None:
                self.last_recording = run.recording.finished(trace.computed_steps())
            self.model_calls_replayed += 0 if run.replay is None else run.replay.model_calls_saved
            trace.cache_bytes = run.span.nbytes() + run.probe.nbytes()
            self.runs.append(trace)
            s = trace.summary()
            LOG.log(logging.DEBUG if self.quiet else logging.INFO, "AdaCache [%s]: computed %s/%s steps (ideal speedup "
                    "%.2fx)", self.label, s["computed_steps"], s["total_steps"], s["ideal_speedup"] or 1.0)

    # -- APPLY_MODEL -------------------------------------------------------------------------------
    def apply_model_wrapper(self, executor, *args, **kwargs):
        """Wraps ``BaseModel.apply_model(x, t, c_concat, c_crossattn, control, transformer_options)``.

        APPLY_MODEL rather than DIFFUSION_MODEL: every model runs it (Mochi's forward, for one,
        skips the DIFFUSION_MODEL wrappers), and it sees ``control`` by name.
        """
        run = self._run
        options = args[5] if len(args) > 5 else kwargs.get("transformer_options", {})
        if run is None or "sigmas" not in options:
            return executor(*args, **kwargs)
        control = args[4] if len(args) > 4 else kwargs.get("control")
        x = args[0]
        sigma = float(options["sigmas"].flatten()[0])
        planner = run.planner
        step = planner.step_of(sigma)
        chunks = options.get("cond_or_uncond") or [0]
        branches = [BRANCH_NAMES.get(c, str(c)) for c in chunks]
        if run.replay is not None:
            replayed = self._replayed(run, CallRecord(step=step, sigma=sigma, branches=branches, computed=False,
                                                      seconds=0.0), x)
            if replayed is not None:
                return replayed
        if run.recording is not None and run.recording.starts(step):
            run.recording.step_started(step, run.span.state())
        computes = planner.enter(step)
        # the branch layout; its conds numbered by first appearance in the run (ComfyUI gives them new uuids on every
        # run, and a replayed run's cache state must fit the run it came from)
        key = tuple((c, run.conds.setdefault(u, len(run.conds))) for c, u in zip(chunks, options.get("uuids") or [None] * len(chunks)))
        if not computes and not run.span.has((self.spans.list_of[-1], key, 0)):
            computes = planner.force(step, NEW_BRANCH_LAYOUT)  # leaves the schedule as it is
        if not computes and self.arch.controls_between and (control or options.get("patches", {}).get("double_block")):
            # additions outside the blocks would be counted twice on top of the cached residual
            computes = planner.force(step, CONTROLS)
            note = "ControlNet or a model patch adds to the blocks' outputs: every step of this run was computed"
            if note not in planner.trace.notes:
                planner.trace.notes.append(note)
        shape = (kwargs.get("latent_shapes") or [x.shape])[0]  # newer ComfyUI packs (video, audio) latents (LTX-2)
        grid = self.arch.token_grid(tuple(shape), self.patch_size) if self.patch_size else None
        if grid is not None and planner.trace.token_grid is None:
            planner.trace.token_grid = list(grid)
        self.call = ModelCall(run=run, key=key, computes=computes, measures=computes and planner.measuring,
                          position=float(step),
                          line=forms_line(step), grid=grid)
        started = time.perf_counter()
        try:
            out = executor(*args, **kwargs)
        finally:
            call, self.call = self.call, None
        if x.is_cuda:
            torch.cuda.synchronize(x.device)  # honest per-call times for the viewer
        planner.trace.calls.append(CallRecord(step=step, sigma=sigma, branches=branches, computed=call.computes,
                                              seconds=time.perf_counter() - started))
        if run.recording is not None:
            run.recording.add(step, call.computes, out)
        return out

    def _replayed(self, run: _Run, record: CallRecord, x: torch.Tensor) -> torch.Tensor | None:
        """A replayed step's recorded output (``record``: this call, for the run data); None from the step where
        the replay ends on, whose cache state it restores first. Recorded again if this run is recorded too."""
        replay, recording, step = run.replay, run.recording, record.step
        if not replay.covers(step):
            if not replay.restored:
                run.span.restore(replay.recording.span_at[step])  # the cache as the recorded run had it here
                replay.restored = True
            return None
        if recording is not None and recording.starts(step):
            recording.step_started(step, replay.recording.span_at[step])
        out, record.computed = replay.next_output(step)
        run.planner.trace.calls.append(record)
        if recording is not None:
            recording.add(step, record.computed, out)
        return out.to(x.device)

    def attention_probe(self, index: int, call: _Call | None, args: dict):
        """Context for one block call: catches a probe block's attention output on a measuring step (probe.py)."""
        run = self._run
        return NO_ATTENTION_PROBE if run is None else run.probe.attention_probe(index, call, args)

    def _store(self, t: torch.Tensor) -> torch.Tensor:
        return t if self._offload is None else t.to(self._offload)


