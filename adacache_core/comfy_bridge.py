"""The ComfyUI bridge: installs AdaCache on a clone of a ModelPatcher through official hooks.

The only module of the core that imports ``comfy``; ``import adacache_core`` does not load it.

Hooks (all on the clone; the input MODEL and the loaded torch model are never touched):
  * OUTER_SAMPLE wrapper: one :class:`RunPlanner` per sampling run (fresh state every run);
  * APPLY_MODEL wrapper: maps the call's sigma to a step, asks the planner compute/reuse,
    times the call and records it;
  * ``patches_replace["dit"]`` per block: on computed steps runs the block (and any replacement
    installed before ours) and measures the probe blocks; on reused steps the first block of each
    block list returns its input plus the cached residual of that list and the others pass through.
  * models whose forward offers no per-block replacement (Cosmos 1 and Predict2, HiDream, Lumina 2):
    the same per-block hook, reached by shadowing each block's ``forward`` for the length of one
    sampling call (forward_override.py, installed and removed by the OUTER_SAMPLE wrapper). Side
    blocks (VACE's hint blocks, Animate's face blocks) are reached the same way and silenced on reused steps.

What a measuring step measures at the probe blocks, and over which process group, is probe.py's job.

Because residuals add up, one summed residual per block list and branch layout covers the stack:
memory is one hidden state per list and branch (plus one per probe block for the distance), not
one per block. One span per list, not one over the whole stack, because a list's stream is what
its own blocks see: models whose later blocks work on text and image merged (HunyuanVideo, Flux)
start a new stream there, and a sequence-parallel engine (Raylight) splits that merged stream across
ranks anew, so the last block's slice is not the first block's.
"""
from __future__ import annotations

import collections
import functools
import logging
import time
from dataclasses import dataclass, field, replace

import torch

import comfy.model_management
import comfy.patcher_extension

from . import forward_override, sequence_parallel
from .replay import Recording, Replay
from .architectures import (Architecture, AttentionResidual, BlockList, SideBlocks, find_architecture, supported_names,
                            unsupported_reason)
from .config import AdaCacheConfig
from .planner import PLAN_NOT_USED, RunPlanner
from .probe import NO_ATTENTION_PROBE, ProbeMeasurement
from .span_memory import SpanMemory, forms_line
from .trace import CallRecord, RunTrace, all_finite, latent_fingerprint

LOG = logging.getLogger("adacache")
OPTIONS_KEY = "adacache"
RUNS_KEPT = 8  # run data a patched model keeps (the viewer finds the run that produced its samples among them)
BRANCH_NAMES = {0: "cond", 1: "uncond"}
_warned: set[str] = set()
# Output fingerprint -> label of the patched model whose run produced it, for more runs than a model keeps:
# ComfyUI may serve a sampler's output from its cache long after its run data are gone.
_produced: collections.OrderedDict[str, str] = collections.OrderedDict()
_PRODUCED_KEPT = 1024


def warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        LOG.warning(message)


@dataclass
class _Call:
    """The model call in flight: its branch layout, whether it computes, and the span's input."""

    key: tuple
    computes: bool
    measures: bool
    position: float  # where the call is, for the span memory: its sigma or step (config.forecast_variable)
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


class _BlockHook:
    """``patches_replace["dit"]`` entry for one block; chains a replacement installed before it."""

    def __init__(self, session: "AdaCacheSession", index: int, previous=None):
        self.session = session
        self.index = index
        self.previous = previous

    def __call__(self, args: dict, extra: dict) -> dict:
        call = self.session.call
        if call is not None and not call.computes:
            return self.session.reuse_block(self.index, call, args)
        before = None if call is None else self.session.before_block(self.index, call, args)
        with self.session.attention_probe(self.index, call, args) as attention:
            out = self.previous(args, extra) if self.previous is not None else extra["original_block"](args)
        if call is not None:
            self.session.after_block(self.index, call, before, out, args.get("transformer_options", {}), attention)
        return out


class _SideBlockHook:
    """Hook for a side block (:class:`SideBlocks`): runs it on computed steps, silences it on reused ones."""

    def __init__(self, session: "AdaCacheSession", spec: SideBlocks):
        self.session = session
        self.spec = spec

    def __call__(self, args: dict, extra: dict) -> dict:
        call = self.session.call
        if call is None or call.computes:
            return extra["original_block"](args)
        like = next(v for v in args.values() if isinstance(v, torch.Tensor))
        return {name: like.new_zeros(()) if name in self.spec.zeroed else args[name] for name in self.spec.returns}


class AdaCacheSession:
    """AdaCache attached to one patched model: settings, hooks, and the traces of its last runs."""

    def __init__(self, config: AdaCacheConfig, arch: Architecture, num_blocks: int, label: str,
                 patch_size: tuple[int, ...] | None, batch_axis: int = 0):
        self.config = config
        self.patch_size = patch_size
        self.batch_axis = batch_axis
        self._tokens = functools.partial(arch.tokens, batch_axis=batch_axis)  # (batch, tokens, channels) view
        self.arch = arch
        self.num_blocks = num_blocks
        self.label = label
        self.quiet = False  # True: no console line per run (AdaCache Plan Search samples hundreds; it reports per level)
        self.runs: collections.deque[RunTrace] = collections.deque(maxlen=RUNS_KEPT)
        self.call: _Call | None = None
        self._run: _Run | None = None
        self._probes = frozenset(config.probe_blocks)
        self._offload = comfy.model_management.unet_offload_device() if config.offload_cache else None
        # the paper's probe (gated self-attention residual) where the table knows it, else the block's
        self.attention: AttentionResidual | None = arch.attention_residual if config.probe_residual == "attention" else None
        self.block_index: list[tuple[BlockList, int]] = []  # main block number -> (its list, index in it)
        self._list_of: list[int] = []  # main block number -> number of its list in arch.block_lists
        self._firsts: dict[int, int] = {}  # first block number of a list -> the list's number
        self._lasts: dict[int, int] = {}  # last block number of a list -> the list's number
        # blocks hooked through their forward: those without replacement, and side blocks
        self.forward_hooks: list[tuple[BlockList | SideBlocks, int, _BlockHook | _SideBlockHook]] = []
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
        self.block_index = blocks
        self._list_of = [self.arch.block_lists.index(block_list) for block_list, _ in blocks]
        self._firsts, self._lasts = _list_bounds(self._list_of)

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
                         steps=max(len(sigmas) - 1, 0), sigmas=sigmas, codebook=[], input_latent=latent_fingerprint(args[1]))
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
                block_list, i = self.block_index[probe]
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
            trace.output_latent = latent_fingerprint(output)
            _remember_producer(trace.output_latent, self.label)
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
        if not computes and not run.span.has((self._list_of[-1], key, 0)):
            computes = True  # this branch layout has no cache yet: compute it, leave the schedule as is
        if not computes and self.arch.controls_between and (control or options.get("patches", {}).get("double_block")):
            # additions outside the blocks would be counted twice on top of the cached residual
            computes = True
            note = "ControlNet or a model patch adds to the blocks' outputs: every step of this run was computed"
            if note not in planner.trace.notes:
                planner.trace.notes.append(note)
        shape = (kwargs.get("latent_shapes") or [x.shape])[0]  # newer ComfyUI packs (video, audio) latents (LTX-2)
        grid = self.arch.token_grid(tuple(shape), self.patch_size) if self.patch_size else None
        if grid is not None and planner.trace.token_grid is None:
            planner.trace.token_grid = list(grid)
        self.call = _Call(key=key, computes=computes, measures=computes and planner.measuring,
                          position=sigma if self.config.forecast_variable == "sigma" else float(step),
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

    # -- per block ---------------------------------------------------------------------------------
    def reuse_block(self, index: int, call: _Call, args: dict) -> dict:
        """Reused step: a list's first block adds the list's cached residual, the rest pass through.

        A model that adds to the stream before every block (Cosmos 1) gets back from a list's last
        block what its first one returned: its additions between the skipped blocks are not counted again.
        """
        stream = self.arch.stream
        first_of = self._firsts.get(index)
        if first_of is not None:
            parts = []
            for part, x in enumerate(self.arch.parts(args[stream])):
                residual = self._run.span.recall((first_of, call.key, part), call.position, x.device, x.dtype)
                parts.append(x + self.arch.from_tokens(residual, x, self.batch_axis))
            out = self.arch.joined(parts)
            if self.arch.adds_before_blocks:
                call.span_output[first_of] = out.clone()  # the model adds to ``out`` in place before the next block
            return {**args, stream: out}
        last_of = self._lasts.get(index)
        if last_of in call.span_output:
            return {**args, stream: call.span_output[last_of]}
        return args

    def before_block(self, index: int, call: _Call, args: dict) -> torch.Tensor | None:
        """Keep what the residuals need of the block's input (a copy if blocks update it in place)."""
        probe = index in self._probes and call.measures
        first_of = self._firsts.get(index)
        if first_of is None and not probe:
            return None
        parts = self.arch.parts(args[self.arch.stream])
        keep = tuple(x.clone() for x in parts) if self.arch.inplace_blocks else parts
        if first_of is not None:
            call.span_input[first_of] = keep
            if index == 0:
                call.image_tokens = self._tokens(parts[0]).shape[1]
                call.flat_stream = parts[0].dim() == 3
        return keep[0] if probe else None

    def attention_probe(self, index: int, call: _Call | None, args: dict):
        """Context for one block call: catches a probe block's attention output on a measuring step (probe.py)."""
        run = self._run
        return NO_ATTENTION_PROBE if run is None else run.probe.attention_probe(index, call, args)

    def after_block(self, index: int, call: _Call, before: torch.Tensor | None, out: dict, options: dict,
                    attention: list | None = None) -> None:
        last_of = self._lasts.get(index)
        if before is None and last_of is None:
            return
        parts = [self._tokens(x) for x in self.arch.parts(out[self.arch.stream])]
        if attention or before is not None:
            residual = self._tokens(attention[0]) if attention else parts[0] - self._tokens(before)
            self._run.probe.measure(index, call, residual, self._list_of[index], options)
        if last_of is not None:
            for part, (now, then) in enumerate(zip(parts, call.span_input[last_of])):
                self._run.span.remember((last_of, call.key, part), call.position, now - self._tokens(then), line=call.line)

    def _store(self, t: torch.Tensor) -> torch.Tensor:
        return t if self._offload is None else t.to(self._offload)


def _list_bounds(list_of: list[int]) -> tuple[dict[int, int], dict[int, int]]:
    """(first block number -> its list, last block number -> its list), from each main block's list number."""
    firsts: dict[int, int] = {}
    lasts: dict[int, int] = {}
    for number, list_number in enumerate(list_of):
        firsts.setdefault(list_number, number)
        lasts[list_number] = number
    return ({number: list_number for list_number, number in firsts.items()},
            {number: list_number for list_number, number in lasts.items()})


def without_adacache(model):
    """``model`` without AdaCache: a clone with every AdaCache hook and wrapper taken off, or ``model``
    itself when it has none. Replacements installed before AdaCache's stay (its hooks chain them)."""
    if session_of(model) is None:
        return model
    clone = model.clone()
    options = clone.model_options.setdefault("transformer_options", {})
    options.pop(OPTIONS_KEY, None)
    replaced = options.get("patches_replace", {}).get("dit", {})
    for key, hook in list(replaced.items()):
        while isinstance(hook, _BlockHook):
            hook = hook.previous
        if hook is None:
            del replaced[key]
        else:
            replaced[key] = hook
    for kind in (comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, comfy.patcher_extension.WrappersMP.APPLY_MODEL):
        clone.remove_wrappers_with_key(kind, OPTIONS_KEY)
    return clone


def blocks_of(arch, diffusion_model) -> list:
    """Every block AdaCache hooks in ``diffusion_model``, as (block list, index), in order."""
    return [(bl, i) for bl in arch.block_lists for i in range(len(bl.modules(diffusion_model)))]


def patch_model(model, config_for, label: str = "model"):
    """Return a clone of ``model`` (a ModelPatcher) with AdaCache installed, or ``model`` unpatched.

    ``config_for(num_blocks)`` builds the AdaCacheConfig once the block count is known (probe
    defaults and validation need it). An unsupported model gets one clear warning and comes back
    as it was.
    """
    diffusion_model = model.get_model_object("diffusion_model")
    arch = find_architecture(diffusion_model)
    if arch is None:
        name = type(diffusion_model).__name__
        warn_once(f"unsupported:{name}",
                  f"AdaCache: {unsupported_reason(diffusion_model)}; the model is returned unpatched. "
                  f"Supported: {', '.join(supported_names())}.")
        return model, None
    blocks = blocks_of(arch, diffusion_model)
    list_ends = set(_list_bounds([arch.block_lists.index(block_list) for block_list, _ in blocks])[1])
    if any(list_ends & side.after_blocks(diffusion_model) for side in arch.side_blocks):
        name = type(diffusion_model).__name__
        warn_once(f"side-after-last:{name}",
                  f"AdaCache: {arch.name} ({name}) adds a side block's output after the last block of a block list, "
                  "outside the spans the cache measures; the model is returned unpatched.")
        return model, None
    config = config_for(len(blocks))
    if config.moreg is not None and config.moreg.calibration is not None:
        config.moreg.calibration.check_matches(arch.name, len(blocks), config.probe_blocks, config.probe_residual,
                                               config.moreg.strides)
    if config.searched_plan is not None:
        config.searched_plan.check_model(arch.name, len(blocks))
    patched = model.clone()
    patch_size = arch.patch_of(diffusion_model)
    session = AdaCacheSession(config, arch, len(blocks), label, patch_size, arch.batch_axis(diffusion_model))
    session.index_blocks(blocks)
    existing = patched.model_options.get("transformer_options", {}).get("patches_replace", {}).get("dit", {})
    for index, (block_list, i) in enumerate(blocks):
        if block_list.key is None:
            session.forward_hooks.append((block_list, i, _BlockHook(session, index)))
        else:
            block_key = (block_list.key, i)
            patched.set_model_patch_replace(_BlockHook(session, index, existing.get(block_key)), "dit", *block_key)
    for side in arch.side_blocks:
        hook = _SideBlockHook(session, side)
        session.forward_hooks += [(side, i, hook) for i in range(len(side.modules(diffusion_model)))]
    transformer_options = patched.model_options.setdefault("transformer_options", {})
    transformer_options[OPTIONS_KEY] = session
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, OPTIONS_KEY, session.outer_sample_wrapper)
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, OPTIONS_KEY, session.apply_model_wrapper)
    return patched, session


def _remember_producer(fingerprint: str | None, label: str) -> None:
    if fingerprint is not None:
        _produced[fingerprint] = label
        _produced.move_to_end(fingerprint)
        while len(_produced) > _PRODUCED_KEPT:
            _produced.popitem(last=False)


def producer_of(fingerprint: str | None) -> str | None:
    """The label of the patched model (its node) whose run in this process produced a latent with this fingerprint."""
    return _produced.get(fingerprint)


def session_of(model) -> AdaCacheSession | None:
    options = getattr(model, "model_options", {}) or {}
    return options.get("transformer_options", {}).get(OPTIONS_KEY)
