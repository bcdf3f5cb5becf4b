"""One declaration per stage: the command line, the pipeline YAML and the library call read the same fields, so a
default, a bound and a parameter's name cannot differ between them."""

from __future__ import annotations

import dataclasses
import typing

import pytest
import yaml
from typer.main import get_command
from typer.testing import CliRunner

from laion_spark.cli import app
from laion_spark.cli.options import _ENGINE_NAMES
from laion_spark.cli.stages import STAGE_COMMANDS, declare
from laion_spark.clip.params import ScoreImages
from laion_spark.config_file import PipelineConfigError
from laion_spark.pipeline.config import parse_pipeline_config
from laion_spark.pipeline.params import PIPELINE_STAGES
from laion_spark.pipeline.stages import StageContext
from laion_spark.stage import FROM_SECTION, ParamError, params

#: A value for every required parameter, valid for every stage that has it (paths absolute: no root to resolve).
REQUIRED = {
    "embeddings": "/data/embeddings/laion2B-en",
    "metadata": "/data/metadata/laion2B-en",
    "collection": "laion2B-en",
    "head": "/data/heads/head.pth",
    "lake": "/data/lake",
    "shards": "/data/tars/*.tar",
    "model": "laion-spark-tiny",
    "table": "/data/lake/aesthetic_tags",
    "value_columns": ("aesthetic",),
    "out": "/data/kv/aesthetic.kv",
    "subset": "aesthetics_6plus",
    "rows": 100,
    "column": "TEXT",
}


def cli_defaults(stage) -> dict[str, object]:
    """What the command line makes of ``stage``'s options left unset (the required ones given)."""
    command = get_command(app).commands[stage.command]
    given = {p.name: p.default for p in command.params if p.name not in _ENGINE_NAMES}
    given.update({p.name: as_typed(p, REQUIRED[p.name]) for p in params(stage) if p.required})
    return {name: value for name, value in given.items() if value is not None}


def as_typed(spec, value):
    """``value`` as the command line gives it: a list as comma-separated text (a field with ``parse``) or repeated."""
    many = typing.get_origin(spec.annotation) is tuple
    if many or isinstance(value, tuple):
        items = value if isinstance(value, tuple) else (value,)
        return ",".join(items) if spec.parse is not None else list(items)
    return value


def pipeline_run(name: str):
    """The pipeline's one run of stage ``name`` from a section with only the required keys."""
    stage = PIPELINE_STAGES[name].stage
    section = {p.name: list(REQUIRED[p.name]) if typing.get_origin(p.annotation) is tuple else REQUIRED[p.name]
               for p in params(stage) if p.required and p.pipeline == FROM_SECTION}  # fmt: skip
    many = PIPELINE_STAGES[name].many
    config = {
        "subsets": [{"name": "aesthetics_6plus", "threshold": 6}],
        "pipeline": {
            "root": "/data",  # what the stages write stays under the root or the lake
            "lake": REQUIRED["lake"],
            "head": REQUIRED["head"],
            "collections": {"laion2B-en": {"metadata": REQUIRED["metadata"], "embeddings": REQUIRED["embeddings"]}},
            "stages": {name: {many: [section]} if many else section},
        },
    }
    ctx = StageContext(None, parse_pipeline_config(yaml.safe_load(yaml.safe_dump(config))), print, resolve_heads=False)
    (run,) = ctx.runs(name)
    return run


@pytest.mark.parametrize("stage", STAGE_COMMANDS, ids=[s.command for s in STAGE_COMMANDS])
def test_every_option_of_a_command_is_a_parameter_of_its_declaration(stage) -> None:
    command = get_command(app).commands[stage.command]
    options = {p.name for p in command.params} - set(_ENGINE_NAMES)
    assert options == {p.name for p in params(stage)}
    assert command.help.split("\n")[0] == stage.__doc__.split("\n")[0]


@pytest.mark.parametrize("name", list(PIPELINE_STAGES))
def test_a_command_and_the_pipeline_stage_running_it_have_the_same_defaults(name: str) -> None:
    stage = PIPELINE_STAGES[name].stage
    from_cli = declare(stage, cli_defaults(stage))
    from_pipeline = pipeline_run(name)
    for spec in params(stage):
        if spec.in_section and spec.name not in REQUIRED:
            assert getattr(from_pipeline, spec.name) == getattr(from_cli, spec.name) == spec.default, spec.name


@pytest.mark.parametrize("name", list(PIPELINE_STAGES))
def test_every_parameter_is_set_in_the_yaml_or_supplied_by_the_pipeline(name: str) -> None:
    stage = PIPELINE_STAGES[name].stage
    section = {p.name for p in params(stage) if p.in_section}
    supplied = {p.name for p in params(stage) if not p.in_section}
    assert section | supplied == {f.name for f in dataclasses.fields(stage)}
    for spec in params(stage):
        if spec.in_section and not spec.required and spec.default is not None and spec.parse is None:
            assert spec.check(spec.default) == spec.default, spec.name  # a default the YAML may give as it is


def test_a_refused_value_names_the_parameter_as_each_caller_knows_it(tmp_path) -> None:
    values = {"shards": "x/*.tar", "model": "laion-spark-tiny", "head": "h.pth", "lake": "lake"}
    with pytest.raises(ParamError, match=r"^batch_size: expected an integer >= 1, got 0$"):
        ScoreImages(**values, batch_size=0)
    result = CliRunner().invoke(app, ["score-images", *[f"--{k}={v}" for k, v in values.items()], "--batch-size", "0"])
    assert result.exit_code == 2 and result.stderr == "error: --batch-size: expected an integer >= 1, got 0\n"
    config = {
        "subsets": [{"name": "a", "threshold": 6}],
        "pipeline": {"stages": {"images": {"shards": "x/*.tar", "model": "m", "head": "h", "batch_size": 0}}},
    }
    with pytest.raises(PipelineConfigError, match=r"^pipeline.stages.images.batch_size: expected an integer >= 1"):
        parse_pipeline_config(config)


def test_a_declaration_is_frozen_and_converts_paths_to_text(tmp_path) -> None:
    stage = ScoreImages(shards=tmp_path / "*.tar", model="laion-spark-tiny", head=tmp_path / "h.pth", lake=tmp_path)
    assert stage.shards == str(tmp_path / "*.tar") and stage.lake == str(tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        stage.batch_size = 1  # type: ignore[misc]
