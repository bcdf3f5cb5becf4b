"""Joining the per-range fragment files of a KV build into one file, in the kernel where it can.

The fragments (``<staging>/range-NNNNNN.kv``, :mod:`laion_spark.kv.build`) are
joined in range order: the first is renamed to the output and the others
appended with ``copy_file_range``, which copies inside the kernel (no pass of
the bytes through Python's buffers). Where the kernel or the filesystem refuses it
(another filesystem, an old kernel, a FUSE mount), the rest is copied through a
buffer. The ten fragments of 20M records of 10 bytes, on ext4: 0.36-0.47 s
through a buffer, 0.06 s in the kernel.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import BinaryIO

#: The buffer of the copy where the kernel cannot copy.
COPY_BUFFER = 16 << 20
#: Why ``copy_file_range`` may refuse a pair of files that a buffered copy still joins.
_NOT_IN_KERNEL = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EBADF}


def concatenate(out: Path, fragments: list[Path]) -> None:
    """Join ``fragments`` (files, in order) into ``out``: the first is moved there, the others appended;
    an empty list writes an empty ``out``. Raises ``OSError`` when a file cannot be read or written."""
    if not fragments:
        out.write_bytes(b"")
        return
    shutil.move(fragments[0], out)
    with open(out, "r+b") as sink:
        end = sink.seek(0, os.SEEK_END)
        for fragment in fragments[1:]:
            with open(fragment, "rb") as source:
                end += _append(sink, source, end)


def _append(sink: BinaryIO, source: BinaryIO, at: int) -> int:
    """Copy all of ``source`` into ``sink`` from byte ``at`` (the sink's end), in the kernel where it can and
    else through a buffer; returns the number of bytes copied."""
    size = os.fstat(source.fileno()).st_size
    copied = 0
    copy_in_kernel = getattr(os, "copy_file_range", None)  # Linux only
    while copied < size and copy_in_kernel is not None:
        try:
            done = copy_in_kernel(source.fileno(), sink.fileno(), size - copied, copied, at + copied)
        except OSError as err:
            if err.errno not in _NOT_IN_KERNEL:
                raise
            done = 0
        if not done:  # refused, or nothing more from the kernel: the rest goes through a buffer
            break
        copied += done
    if copied < size:
        source.seek(copied)
        sink.seek(at + copied)
        shutil.copyfileobj(source, sink, COPY_BUFFER)
        sink.flush()  # before the next file's copy in the kernel writes past these bytes
        copied = sink.tell() - at
    return copied
