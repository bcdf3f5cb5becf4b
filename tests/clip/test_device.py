"""Device per task: CUDA_VISIBLE_DEVICES, then the task's Spark GPU address, then cuda:0, then the CPU."""

from __future__ import annotations

import logging

import pytest
from pyspark.resource import ResourceInformation

from laion_spark.clip.device import precision_for, select_device, task_resources

GPU_1 = {"gpu": ResourceInformation("gpu", ["1"])}


def test_without_cuda_the_cpu_whatever_spark_assigned() -> None:
    assert select_device(environ={"CUDA_VISIBLE_DEVICES": "0"}, resources=GPU_1, cuda_devices=0) == "cpu"


def test_cuda_visible_devices_wins_over_the_task_resource() -> None:
    assert select_device(environ={"CUDA_VISIBLE_DEVICES": "3"}, resources=GPU_1, cuda_devices=1) == "cuda:0"


def test_the_gpu_address_spark_assigned_to_the_task() -> None:
    assert select_device(environ={}, resources=GPU_1, cuda_devices=2) == "cuda:1"
    assert select_device(environ={"CUDA_VISIBLE_DEVICES": " "}, resources=GPU_1, cuda_devices=2) == "cuda:1"


def test_an_address_this_process_cannot_see_falls_back_to_cuda_0(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="laion_spark.clip"):
        assert select_device(environ={}, resources={"gpu": ResourceInformation("gpu", ["5"])}, cuda_devices=2) == (
            "cuda:0"
        )
    assert "assigned GPU '5'" in caplog.text


def test_cuda_0_when_present_and_nothing_assigned() -> None:
    assert select_device(environ={}, resources={}, cuda_devices=4) == "cuda:0"
    assert select_device(environ={}, resources={"fpga": ResourceInformation("fpga", ["0"])}, cuda_devices=1) == (
        "cuda:0"
    )


def test_outside_a_spark_task_there_are_no_resources() -> None:
    assert task_resources() == {}


def test_fp16_on_gpus_fp32_on_the_cpu() -> None:
    assert (precision_for("cuda:1"), precision_for("cpu")) == ("fp16", "fp32")
