"""Run the configured stages in order, resuming where a previous run stopped.

:func:`run_pipeline` checks the whole plan before any stage runs (every file a
stage needs exists, ``--from`` / ``--only`` name configured stages), then for
each stage: skips it when it is complete for the same inputs and parameters
(:mod:`.state`), else runs it and records its completion in
``pipeline_stages``. A stage that fails stops the pipeline; a rerun starts at
the first stage that is not complete. :func:`describe` prints the plan.
"""

from __future__ import annotations

import glob
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..config_file import PipelineConfigError
from ..lake.layout import is_local
from ..stage import FROM_LAKE, Stage
from .config import PipelineConfig
from .params import PIPELINE_STAGES, STAGE_ORDER
from .stages import StageContext
from .state import StageRecords, fingerprint

if TYPE_CHECKING:
    from ..engine.session import LakeSession


@dataclass
class StageOutcome:
    """What happened to one stage: ``ran`` or ``skipped`` (complete), its seconds and its runs' results."""

    name: str
    status: str
    seconds: float = 0.0
    results: list[object] = field(default_factory=list)


@dataclass
class PipelineResult:
    """The outcome of every configured stage, in order."""

    lake_dir: str
    stages: list[StageOutcome] = field(default_factory=list)

    def format(self) -> str:
        """One line per stage: status and seconds."""
        lines = [f"pipeline over {self.lake_dir}:"]
        lines += [f"  {s.name:<22} {s.status:<8} {s.seconds:7.1f} s" for s in self.stages]
        return "\n".join(lines)


def plan_stages(config: PipelineConfig, from_stage: str | None = None, only: Sequence[str] | None = None) -> list[str]:
    """The configured stages to consider, in order; raises :class:`PipelineConfigError` for an unknown name."""
    if config.pipeline is None:
        raise PipelineConfigError("pipeline: missing section (the stages' inputs, outputs and parameters)")
    configured = [name for name in STAGE_ORDER if name in config.pipeline.stages]
    for option, names in (("--from", [from_stage] if from_stage else []), ("--only", list(only or []))):
        for name in names:
            if name not in configured:
                raise PipelineConfigError(
                    f"{option} {name}: not a configured stage; configured: {', '.join(configured)}"
                )
    if only is not None:
        if not only:
            raise PipelineConfigError(f"--only: name at least one stage; configured: {', '.join(configured)}")
        return [name for name in configured if name in only]
    if from_stage:
        return configured[configured.index(from_stage) :]
    return configured


@dataclass(frozen=True)
class PlannedStage:
    """A stage about to run: its runs (declarations), and what they read and write."""

    name: str
    runs: list[Stage]

    @property
    def inputs(self) -> list[str]:
        """Every file, folder or table its runs read, in the order they name them."""
        return list(dict.fromkeys(path for run in self.runs for path in run.inputs()))

    @property
    def outputs(self) -> list[str]:
        """Every file, folder or table its runs write, in the order they name them."""
        return list(dict.fromkeys(path for run in self.runs for path in run.outputs()))


def plan(ctx: StageContext, names: Sequence[str], *, check_inputs: bool = True) -> list[PlannedStage]:
    """The runs of every stage in ``names``; raises :class:`PipelineConfigError` for a refused parameter, or (with
    ``check_inputs``) an output that cannot be written (:func:`check_outputs`) or an input that neither exists now
    nor is written by an earlier stage of the plan (naming it)."""
    planned, written = [], set()
    for name in names:
        stage = PlannedStage(name, ctx.runs(name))
        if check_inputs:
            check_outputs([stage])
        for path in stage.inputs if check_inputs else []:
            if path not in written and is_local(path) and not _exists(path):
                raise PipelineConfigError(f"pipeline.stages.{name}: input {path} does not exist")
        written.update(stage.outputs)
        planned.append(stage)
    return planned


def check_outputs(stages: Sequence[PlannedStage]) -> None:
    """Raise :class:`PipelineConfigError` naming the key when an output of a planned run cannot be written (a lake
    that is a file, a folder the OS refuses: :meth:`~laion_spark.stage.Stage.refused_output`), before any runs."""
    for stage in stages:
        many = PIPELINE_STAGES[stage.name].many
        for i, run in enumerate(stage.runs):
            refused = run.refused_output()
            if refused is None:
                continue
            spec = next((p for p, _ in run.values() if p.name == refused.name), None)
            if spec is not None and spec.pipeline == FROM_LAKE:
                raise PipelineConfigError(refused.labelled("pipeline.lake"))
            where = f"pipeline.stages.{stage.name}" + (f".{many}[{i}]" if many else "")
            raise PipelineConfigError(refused.labelled(f"{where}.{refused.name}"))


def _exists(path: str) -> bool:
    return bool(glob.glob(path)) if glob.has_magic(path) else Path(path).exists()


def run_pipeline(
    lake: LakeSession,
    config: PipelineConfig,
    *,
    from_stage: str | None = None,
    only: Sequence[str] | None = None,
    force: bool = False,
    echo: Callable[[str], None] = print,
) -> PipelineResult:
    """Run the configured stages on ``lake`` (``from_stage`` and every later one, or just ``only``); returns
    what each did.

    A stage that is complete for the same inputs and parameters is skipped, unless ``force``. Raises
    :class:`PipelineConfigError` for a bad plan, a refused parameter or a missing input before any stage runs,
    and whatever a stage raises.
    """
    ctx = StageContext(lake, config, echo)
    stages = plan(ctx, plan_stages(config, from_stage, only))
    records = StageRecords.load(lake, ctx.lake_dir)
    result = PipelineResult(ctx.lake_dir)
    for stage in stages:
        print_ = fingerprint(stage.name, stage.runs, stage.inputs)
        if not force and records.complete(stage.name, print_, stage.outputs):
            echo(f"-> {stage.name}: complete for these inputs and parameters, skipped")
            result.stages.append(StageOutcome(stage.name, "skipped"))
            continue
        definition = PIPELINE_STAGES[stage.name]
        echo(f"-> {stage.name} ({definition.command}, {definition.resources})")
        started = time.perf_counter()
        results = []
        for run in stage.runs:
            results.append(run.run(lake))
            echo(run.summarize(results[-1]))
        records.record(stage.name, print_, stage.outputs)
        result.stages.append(StageOutcome(stage.name, "ran", time.perf_counter() - started, results))
    return result


def describe(config: PipelineConfig) -> str:
    """The plan as text: each configured stage, its command and resources, and per run its parameters, what it
    reads and what it writes."""
    ctx = StageContext(None, config, print, resolve_heads=False)
    lines = []
    for stage in plan(ctx, plan_stages(config), check_inputs=False):
        definition = PIPELINE_STAGES[stage.name]
        lines.append(f"{stage.name}  ({definition.command}, {definition.resources})")
        for run in stage.runs:
            if len(stage.runs) > 1:
                lines.append(f"  - {getattr(run, 'collection', None) or getattr(run, 'out', '')}")
            lines += [f"    {spec.name:<22} {_shown(value)}" for spec, value in run.values() if spec.in_section]
            lines += [f"    reads  {path}" for path in run.inputs()]
            lines += [f"    writes {path}" for path in run.outputs()]
    return "\n".join(lines)


def _shown(value: object) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, tuple) else str(value)
