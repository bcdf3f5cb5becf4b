"""bench/gpu_check.py, the driver of the prepared GPU run: its JSON schema, its summary, a failing section
that does not stop the others, budgets that kill a section, its refusals; the dry run and the GPU run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
from conftest import REPO

from bench import gpu_check
from bench.gpu_check import SCHEMA, SECTIONS, problems, run_section, spawn_section, summarise
from bench.gpu_common import Clock, Context


def _record(status: str = "ok", **extra: object) -> dict:
    base = {"status": status, "wall_s": 1.0, "budget_s": 10.0}
    base.update({"result": {}} if status in ("ok", "skipped") else {"error": "RuntimeError: x"})
    return {**base, **extra}


def _report(mode: str = "gpu", **sections: dict) -> dict:
    return {
        "schema": SCHEMA,
        "mode": mode,
        "device": "cuda:0",
        "started": "2026-12-05T00:00:00+00:00",
        "sections": sections,
    }


def test_a_complete_report_has_no_schema_problem_and_broken_ones_are_named() -> None:
    good = _report(environment=_record(), oom=_record("failed"), sail=_record("skipped"))
    assert problems(good) == []
    bad = _report(
        environment=_record(status="fine"),
        oom={"status": "failed", "wall_s": 1.0, "budget_s": 2.0},
        sail={"status": "ok", "wall_s": "1", "budget_s": 2.0},
        tpu=_record(),
    )
    bad["schema"] = "other/1"
    bad["finished"] = "2026-12-05T00:01:00+00:00"
    found = problems(bad)
    assert "schema: 'other/1' is not 'laion-spark/gpu-check/1'" in found
    assert "sections.environment.status: not one of ('ok', 'skipped', 'failed', 'crashed', 'timeout')" in found
    assert "sections.oom.error: missing for status failed" in found
    assert "sections.sail.result: missing for status ok" in found
    assert "sections.sail.wall_s: missing or not a number" in found
    assert "sections.tpu: unknown section" in found
    assert "summary: missing in a finished report" in found


def _throughput(tensors: float, end_to_end: float) -> dict:
    return _record(
        result={"from_tensors": {"images_per_s": tensors}, "end_to_end": {"gpu_decode": {"images_per_s": end_to_end}}}
    )


def test_the_summary_sets_the_figures_beside_the_goals_and_fails_on_a_failed_check_or_section() -> None:
    passed = _record(result={"passed": True})
    summary = summarise(_report(throughput=_throughput(2600.0, 900.0), correctness=passed, oom=passed))
    goals = summary["goals"]
    assert goals["vit_l14_from_tensors_images_per_s"] == {"value": 2600.0, "goal": 2500, "met": True}
    assert goals["vit_l14_end_to_end_images_per_s"] == {"value": 900.0, "goal": 1000, "met": False}
    assert summary["ok"] and summary["checks"]["sail"] is None  # a missed goal is a finding, not a failure
    assert (
        summarise(_report("cpu-dry-run", throughput=_throughput(5.0, 1.0)))["goals"][
            "vit_l14_from_tensors_images_per_s"
        ]["met"]
        is None
    )
    assert not summarise(_report(correctness=_record(result={"passed": False})))["ok"]
    assert not summarise(_report(oom=_record("timeout")))["ok"]


def _fake_sections(monkeypatch: pytest.MonkeyPatch, env_device: str) -> None:
    module = types.ModuleType("fake_gpu_sections")
    module.environment = lambda ctx: {"device": env_device}

    def boom(ctx: Context) -> dict:
        raise RuntimeError("boom: the throughput section broke")

    module.boom = boom
    module.fine = lambda ctx: {"passed": True, "device": ctx.device, "budget": ctx.clock.budget_s}
    monkeypatch.setitem(sys.modules, "fake_gpu_sections", module)
    monkeypatch.setattr(
        gpu_check,
        "SECTIONS",
        {
            "environment": ("fake_gpu_sections:environment", 40, 40),
            "throughput": ("fake_gpu_sections:boom", 40, 40),
            "oom": ("fake_gpu_sections:fine", 30, 30),
        },
    )

    def in_process(name: str, device: str, small: bool, work: Path, budget_s: float) -> dict:
        result = work / f"{name}.json"
        run_section(name, Context(device, small, work, Clock(budget_s)), result)
        return {**json.loads(result.read_text()), "wall_s": 0.1, "budget_s": budget_s}

    monkeypatch.setattr(gpu_check, "spawn_section", in_process)


def test_a_failing_section_is_recorded_and_the_next_one_still_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_sections(monkeypatch, "cuda:0")
    out = tmp_path / "gpu_check.json"
    assert gpu_check.main(["--out", str(out), "--work", str(tmp_path / "work")]) == 1
    report = json.loads(out.read_text())
    sections = report["sections"]
    assert list(sections) == ["environment", "throughput", "oom"]
    assert sections["throughput"]["status"] == "failed"
    assert sections["throughput"]["error"] == "RuntimeError: boom: the throughput section broke"
    assert any("raise RuntimeError" in line for line in sections["throughput"]["traceback"])
    assert sections["oom"]["status"] == "ok" and sections["oom"]["result"]["device"] == "cuda:0"
    assert report["device"] == "cuda:0" and report["summary"]["ok"] is False
    assert "schema_problems" not in report["summary"]


def test_auto_on_a_machine_without_cuda_refuses_with_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_sections(monkeypatch, "cpu")
    assert gpu_check.main(["--out", str(tmp_path / "r.json"), "--work", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: no CUDA device here")
    assert "--device cpu --small" in err


def test_the_deadline_skips_sections_it_leaves_no_time_for(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_sections(monkeypatch, "cuda:0")
    out = tmp_path / "r.json"
    gpu_check.main(["--out", str(out), "--work", str(tmp_path / "w"), "--sections", "oom", "--deadline-s", "24"])
    # 24 s less the grace leaves 14 s: under the minimum a section is started with
    sections = json.loads(out.read_text())["sections"]
    assert sections["environment"]["budget_s"] == 15  # always runs, with at least the minimum budget
    assert sections["oom"] == {
        "status": "skipped",
        "result": {"skipped": "no time left"},
        "wall_s": 0.0,
        "budget_s": 0.0,
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sections", "throughput,warp"], "error: unknown section(s) warp"),
        (["--device", "tpu"], "error: --device 'tpu': give auto, cpu or cuda:N"),
    ],
)
def test_bad_options_exit_2_with_one_line(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert gpu_check.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(message)


def test_a_section_over_its_budget_is_killed_and_recorded_as_a_timeout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(gpu_check, "GRACE_S", 0)
    monkeypatch.chdir(REPO)
    record = spawn_section("environment", "cpu", True, tmp_path, 0.2)  # torch alone takes longer to import
    assert record["status"] == "timeout" and record["error"].startswith("killed after")


def test_a_section_process_that_leaves_no_result_is_recorded_as_crashed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(REPO)
    record = spawn_section("no-such-section", "cpu", True, tmp_path, 30)
    assert record["status"] == "crashed" and "exited 2 without a result" in record["error"]


def test_a_section_that_says_skipped_is_recorded_as_skipped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    module = types.ModuleType("fake_skip")
    module.skip = lambda ctx: {"skipped": "Sail cannot run here: no pysail"}
    monkeypatch.setitem(sys.modules, "fake_skip", module)
    monkeypatch.setitem(SECTIONS, "sail", ("fake_skip:skip", 10, 10))
    run_section("sail", Context("cpu", True, tmp_path, Clock(10)), tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["status"] == "skipped"


def test_the_shell_script_refuses_missing_wheels_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "GPU_WHEELS": str(tmp_path / "none")}
    proc = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu_check.sh"), str(tmp_path / "out")], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: no wheels in")


def _run_driver(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.gpu_check", "--out", str(out), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])},
    )
    return proc, json.loads(out.read_text())


@pytest.mark.slow
def test_the_cpu_dry_run_runs_every_section_and_writes_a_valid_report(tmp_path: Path) -> None:
    proc, report = _run_driver(tmp_path, "--device", "cpu", "--small")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert problems(report) == [] and report["mode"] == "cpu-dry-run"
    assert {name: s["status"] for name, s in report["sections"].items()} == dict.fromkeys(SECTIONS, "ok")
    assert report["sections"]["oom"]["result"]["simulated"] is True
    assert report["summary"]["ok"] and all(report["summary"]["checks"].values())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_the_correctness_oom_and_concurrency_checks_pass(tmp_path: Path) -> None:
    proc, report = _run_driver(tmp_path, "--sections", "correctness,oom,concurrency")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert report["sections"]["oom"]["result"]["simulated"] is False
    assert report["sections"]["oom"]["result"]["halvings"] >= 1
    assert report["sections"]["correctness"]["result"]["gpu_path"]["decoder"] == "nvJPEG"
