"""Which device a task runs its model on, and in which precision.

Order, as NVIDIA's Spark-DL examples and spark-rapids-ml resolve it:

1. ``CUDA_VISIBLE_DEVICES`` is set (a scheduler narrowed what the process sees): ``cuda:0``, the first
   device left visible;
2. else the GPU address Spark assigned to the task (``TaskContext.resources()["gpu"]``, with
   ``spark.task.resource.gpu.amount`` set): ``cuda:<address>``;
3. else ``cuda:0`` when CUDA is present;
4. else the CPU.

fp16 on a GPU, fp32 on the CPU.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("laion_spark.clip")


def task_resources() -> Mapping[str, Any]:
    """The running Spark task's resources (name -> ``ResourceInformation``); empty outside a task or on
    engines whose Python workers carry no task context (Sail)."""
    try:
        from pyspark import TaskContext

        context = TaskContext.get()
        return dict(context.resources()) if context is not None else {}
    except Exception:  # noqa: BLE001 - no context, or an engine without resources: no assigned GPU
        return {}


def cuda_device_count() -> int:
    """CUDA devices this process sees (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def select_device(
    *,
    environ: Mapping[str, str] | None = None,
    resources: Mapping[str, Any] | None = None,
    cuda_devices: int | None = None,
) -> str:
    """The torch device for this task: ``cuda:N`` or ``cpu`` (see the module docstring for the order).

    ``environ`` (default ``os.environ``), ``resources`` (default :func:`task_resources`) and
    ``cuda_devices`` (default :func:`cuda_device_count`) are what the choice reads, passed in by tests.
    """
    environ = os.environ if environ is None else environ
    count = cuda_device_count() if cuda_devices is None else cuda_devices
    if count == 0:
        return "cpu"
    if environ.get("CUDA_VISIBLE_DEVICES", "").strip():
        return "cuda:0"
    gpu = (task_resources() if resources is None else resources).get("gpu")
    addresses = list(getattr(gpu, "addresses", None) or [])
    if addresses:
        address = str(addresses[0]).strip()
        if address.isdigit() and int(address) < count:
            return f"cuda:{int(address)}"
        log.warning("Spark assigned GPU %r, which this process does not see (%d devices): using cuda:0", address, count)
    return "cuda:0"


def precision_for(device: str) -> str:
    """``fp16`` on a CUDA device, ``fp32`` on the CPU."""
    return "fp16" if str(device).startswith("cuda") else "fp32"
