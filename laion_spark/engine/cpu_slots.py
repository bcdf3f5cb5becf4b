"""How many Python tasks of one process compute at once: one per CPU this process may run on.

Classic Spark runs each Python task in a worker process of its own; Sail runs
every task of a stage as a thread of one process, all at once (10 key ranges:
10 threads sorting on 2 cores). A task that holds a whole partition in numpy
(a sort, an encoding) takes a slot for that work: the others wait with their
input only, not with their working copies too (``build-kv``'s figures are in
:mod:`laion_spark.kv.build`). Where each task has a process of its own, a slot
is never waited for.
"""

from __future__ import annotations

import os
import threading

#: One slot per CPU this process may run on (its affinity, e.g. a container's cpuset).
_SLOTS = threading.BoundedSemaphore(
    len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
)


def cpu_slot() -> threading.BoundedSemaphore:
    """This process's slots, as a context manager: ``with cpu_slot(): ...`` computes while holding one.

    A function, not the semaphore itself, is what task code refers to: cloudpickle ships a module-level function
    by name, while a lock a closure referred to would be pickled by value, which fails.
    """
    return _SLOTS
