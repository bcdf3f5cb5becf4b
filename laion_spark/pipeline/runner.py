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

from ..engine.factory import LakeSession
from ..lake.runs import RunSummary
from ..lake.tables import is_local
from .config import PipelineConfig
from .params import STAGE_ORDER
from .stages import STAGES, Stage, StageContext
from .state import StageRecords, fingerprint
from .validate import PipelineConfigError


@dataclass
class StageOutcome:
    """What happened to one stage: ``ran`` or ``skipped`` (complete), its seconds and run summaries."""

    name: str
    status: str
    seconds: float = 0.0
    summaries: list[RunSummary] = field(default_factory=list)


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
    if only:
        return [name for name in configured if name in only]
    if from_stage:
        return configured[configured.index(from_stage) :]
    return configured


def check_inputs(ctx: StageContext, names: Sequence[str]) -> None:
    """Every file the ``names`` stages need must exist now; raises :class:`PipelineConfigError` naming it."""
    for name in names:
        for path in STAGES[name].files(ctx):
            if is_local(path) and not (glob.glob(path) if glob.has_magic(path) else Path(path).exists()):
                raise PipelineConfigError(f"pipeline.stages.{name}: input {path} does not exist")


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
    :class:`PipelineConfigError` for a bad plan or a missing input before any stage runs, and whatever a
    stage raises.
    """
    names = plan_stages(config, from_stage, only)
    ctx = StageContext(lake, config, echo)
    check_inputs(ctx, names)
    records = StageRecords.load(lake, ctx.lake_dir)
    result = PipelineResult(ctx.lake_dir)
    for name in names:
        stage = STAGES[name]
        print_ = fingerprint(name, stage.params(ctx), stage.inputs(ctx))
        if not force and records.complete(name, print_, stage.outputs(ctx)):
            echo(f"-> {name}: complete for these inputs and parameters, skipped")
            result.stages.append(StageOutcome(name, "skipped"))
            continue
        echo(f"-> {name} ({stage.command}, {stage.resources})")
        started = time.perf_counter()
        summaries = stage.run(ctx)
        records.record(name, print_, stage.outputs(ctx))
        result.stages.append(StageOutcome(name, "ran", time.perf_counter() - started, summaries))
    return result


def describe(lake: LakeSession | None, config: PipelineConfig) -> str:
    """The plan as text: each configured stage, its command, resources, inputs and outputs."""
    ctx = StageContext(lake, config, print)  # type: ignore[arg-type]
    lines = []
    for name in plan_stages(config):
        stage: Stage = STAGES[name]
        lines.append(f"{name}  ({stage.command}, {stage.resources})")
        lines += [f"    reads  {path}" for path in stage.inputs(ctx)]
        lines += [f"    writes {path}" for path in stage.outputs(ctx)]
    return "\n".join(lines)
