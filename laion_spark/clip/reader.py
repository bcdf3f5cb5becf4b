"""Webdataset tar shards as img2dataset writes them: ``KEY.jpg|png|webp`` + ``KEY.txt`` + ``KEY.json``.

Members are grouped into samples by key (the member path up to the first ``.`` of its file name, the
webdataset convention); a sample's members need not be adjacent. What cannot be embedded becomes a
sample with an ``error`` instead of an exception, so that every sample is counted once:

========================  ===================================================================
``missing_image``         no ``.jpg``/``.jpeg``/``.png``/``.webp`` member
``missing_caption``       no ``.txt`` member
``unknown_member``        a member of any other type (``KEY.gif`` ...), or two image members
``bad_metadata``          the ``.json`` is not a JSON object, or the caption is not UTF-8
``truncated_member``      the tar ends inside one of the sample's members
``unreadable_tar``        the file is not a tar, its headers break off, or it ends without the
                          end-of-archive blocks (one row, for the rest of the tar)
========================  ===================================================================

Decoding the image itself can add ``empty_image``, ``truncated_image``, ``undecodable_image`` and
``decode_timeout`` (:mod:`laion_spark.clip.decode`). The caption is the ``.txt`` member; ``url``, and the
``width``/``height`` img2dataset records, come from the ``.json``.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: Image member types (file extensions) the decoder accepts.
IMAGE_TYPES = ("jpg", "jpeg", "png", "webp")
CAPTION_TYPE = "txt"
METADATA_TYPE = "json"

MISSING_IMAGE = "missing_image"
MISSING_CAPTION = "missing_caption"
UNKNOWN_MEMBER = "unknown_member"
BAD_METADATA = "bad_metadata"
TRUNCATED_MEMBER = "truncated_member"
UNREADABLE_TAR = "unreadable_tar"


def error(kind: str, detail: str = "") -> str:
    """The error string of a failed sample: ``kind`` or ``kind: detail`` (the kind is what summaries count)."""
    return f"{kind}: {detail}" if detail else kind


def error_kind(message: str) -> str:
    """The kind of an error string made by :func:`error`."""
    return message.split(":", 1)[0]


@dataclass
class TarSample:
    """One sample of a tar: its key, raw image bytes and type, caption, img2dataset record and error."""

    key: str
    image: bytes | None = None
    image_type: str | None = None
    caption: str | None = None
    record: dict[str, object] = field(default_factory=dict)
    error: str | None = None

    @property
    def url(self) -> str | None:
        """The image URL img2dataset recorded (``None`` when the record lacks it)."""
        url = self.record.get("url")
        return url if isinstance(url, str) else None

    def size(self, name: str) -> int | None:
        """``width`` or ``height`` from the record, when it holds an integer."""
        value = self.record.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None


def _split(name: str) -> tuple[str, str]:
    """``dir/000001.jpg`` -> (``dir/000001``, ``jpg``): key up to the first dot of the file name, lower-case type."""
    head, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    key = f"{head}/{stem}" if head else stem
    return key, ext.lower() if dot else ""


class TarShard:
    """The samples of one tar file: headers are read on opening (cheap: data is skipped), data on iteration."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.members: dict[str, list[tarfile.TarInfo]] = {}
        self.tail_error: str | None = None
        self._tar: tarfile.TarFile | None = None
        try:
            self._tar = tarfile.open(self.path, mode="r:")  # noqa: SIM115 - closed by close() / __exit__
        except (OSError, tarfile.TarError, EOFError) as err:
            self.tail_error = error(UNREADABLE_TAR, f"{Path(self.path).name}: {err}")
            return
        while True:
            try:
                info = self._tar.next()
            except (OSError, tarfile.TarError, EOFError) as err:
                self.tail_error = error(
                    UNREADABLE_TAR,
                    f"{Path(self.path).name}: headers break off after {self.sample_count} samples ({err})",
                )
                break
            if info is None:
                self._check_end()
                break
            if info.isfile():
                self.members.setdefault(_split(info.name)[0], []).append(info)

    def _check_end(self) -> None:
        """Flag a tar cut inside a header or its end marker (tarfile reads both as a normal end)."""
        assert self._tar is not None
        end = self._tar.offset  # where the end-of-archive zero blocks start
        size = Path(self.path).stat().st_size
        if size < end + 2 * tarfile.BLOCKSIZE:
            self.tail_error = error(
                UNREADABLE_TAR,
                f"{Path(self.path).name}: ends without the end-of-archive marker after {self.sample_count} samples "
                "(truncated?)",
            )

    @property
    def sample_count(self) -> int:
        """Samples found in the headers (the rows this tar yields, but for a ``tail_error`` row)."""
        return len(self.members)

    def __len__(self) -> int:
        """Rows :meth:`samples` yields: one per sample, plus one for an unreadable tail."""
        return self.sample_count + (self.tail_error is not None)

    def samples(self) -> Iterator[TarSample]:
        """Every sample in header order, data read now; then an ``unreadable_tar`` sample for a broken tail."""
        for key, infos in self.members.items():
            yield self._sample(key, infos)
        if self.tail_error is not None:
            yield TarSample(key="", error=self.tail_error)

    def close(self) -> None:
        """Close the file."""
        if self._tar is not None:
            self._tar.close()

    def __enter__(self) -> TarShard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, info: tarfile.TarInfo) -> bytes | None:
        """The member's bytes, or ``None`` when the tar ends inside it."""
        assert self._tar is not None
        try:
            handle = self._tar.extractfile(info)
            data = handle.read() if handle is not None else b""
        except (OSError, tarfile.TarError, EOFError):
            return None
        return data if len(data) == info.size else None

    def _sample(self, key: str, infos: list[tarfile.TarInfo]) -> TarSample:
        sample = TarSample(key=key)
        problems: list[str] = []
        for info in infos:
            kind = _split(info.name)[1]
            known = kind in IMAGE_TYPES or kind in (CAPTION_TYPE, METADATA_TYPE)
            if not known:
                problems.append(error(UNKNOWN_MEMBER, info.name))
                continue
            data = self._read(info)
            if data is None:
                problems.append(error(TRUNCATED_MEMBER, info.name))
            elif kind in IMAGE_TYPES:
                if sample.image_type is not None:
                    problems.append(error(UNKNOWN_MEMBER, f"{info.name}: a second image of {key}"))
                sample.image, sample.image_type = data, kind
            elif kind == CAPTION_TYPE:
                try:
                    sample.caption = data.decode("utf-8")
                except UnicodeDecodeError as err:
                    problems.append(error(BAD_METADATA, f"{info.name} is not UTF-8 ({err.reason})"))
            else:
                try:
                    record = json.loads(data)
                except (UnicodeDecodeError, json.JSONDecodeError) as err:
                    record = None
                    problems.append(error(BAD_METADATA, f"{info.name}: {err}"))
                if isinstance(record, dict):
                    sample.record = record
                elif record is not None:
                    problems.append(error(BAD_METADATA, f"{info.name} is not a JSON object"))
        if sample.image_type is None and not any(p.startswith(TRUNCATED_MEMBER) for p in problems):
            problems.append(error(MISSING_IMAGE, key))
        if sample.caption is None and not problems:
            problems.append(error(MISSING_CAPTION, key))
        if problems:
            sample.error = problems[0]
            sample.image = None
        return sample
