"""Webdataset tar shards as img2dataset writes them: ``KEY.jpg|png|webp`` + ``KEY.txt`` + ``KEY.json``.

Members are grouped into samples by key (the member path up to the first ``.`` of its file name, the
webdataset convention); a sample's members need not be adjacent. Hard links and symbolic links are read
through to the member they point to inside the tar. What cannot be embedded becomes a sample with an
``error`` instead of an exception, so that every sample is counted once:

========================  ===================================================================
``missing_image``         no ``.jpg``/``.jpeg``/``.png``/``.webp`` member
``missing_caption``       no ``.txt`` member
``unknown_member``        a member of any other type (``KEY.gif``, a fifo ...), or a second image,
                          caption or record of one key
``bad_metadata``          the ``.json`` is not a JSON object (or nests too deep), one of its fields
                          does not fit its column (:data:`RECORD_FIELDS`), the caption is not UTF-8,
                          or the member's name is not UTF-8
``unresolved_link``       a link whose target is not a file of the tar (missing, outside, a loop)
``truncated_member``      the tar ends inside one of the sample's members
``unreadable_tar``        the file is not a tar, its headers break off, or it ends without the
                          end-of-archive blocks (one row, for the rest of the tar)
========================  ===================================================================

Decoding the image itself can add ``empty_image``, ``truncated_image``, ``undecodable_image`` and
``decode_timeout`` (:mod:`laion_spark.clip.decode`). The caption is the ``.txt`` member; the fields of
:data:`RECORD_FIELDS` come from the ``.json`` (img2dataset's record: ``url``, ``status``, ``sha256``, the
stored ``width``/``height`` and the ``original_width``/``original_height`` ...), each checked against its
column: a value that does not fit (a width over int32, a number where text belongs, text that is not
valid Unicode) fails the sample, naming the tar, the member and the field. Error strings name the member
as ``TAR/MEMBER`` (``00000.tar/000012.json``).
"""

from __future__ import annotations

import json
import math
import posixpath
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
UNRESOLVED_LINK = "unresolved_link"
TRUNCATED_MEMBER = "truncated_member"
UNREADABLE_TAR = "unreadable_tar"

#: Largest value of an int32 column (the sizes img2dataset records).
INT32_MAX = 2**31 - 1
#: The ``.json`` fields read into columns, with their type: text (valid Unicode) or a size (an integer in
#: 0 .. :data:`INT32_MAX`). Missing or null fields are null; other fields of the record are not read.
RECORD_FIELDS: dict[str, str] = {
    "url": "text",
    "status": "text",
    "error_message": "text",
    "sha256": "text",
    "exif": "text",
    "width": "size",
    "height": "size",
    "original_width": "size",
    "original_height": "size",
}
#: Links followed one after the other before a link is taken for a loop.
_MAX_LINKS = 16


def error(kind: str, detail: str = "") -> str:
    """The error string of a failed sample: ``kind`` or ``kind: detail`` (the kind is what summaries count)."""
    return f"{kind}: {detail}" if detail else kind


def error_kind(message: str) -> str:
    """The kind of an error string made by :func:`error`."""
    return message.split(":", 1)[0]


def printable(name: str) -> str:
    """``name`` as valid Unicode: bytes that are not UTF-8 (kept by ``tarfile`` as surrogates) become ``\\xNN``."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_unicode(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8 (no lone surrogates, which JSON escapes and odd names give)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_field(name: str, value: object) -> str | int | None:
    """``value`` of the record field ``name`` as its column keeps it (:data:`RECORD_FIELDS`).

    Returns ``None`` for a null; raises ``ValueError`` saying why for a value that does not fit.
    """
    if value is None:
        return None
    if RECORD_FIELDS[name] == "text":
        if not isinstance(value, str):
            raise ValueError(f"{name} is {_shown(value)}, not text")
        if not is_unicode(value):
            raise ValueError(f"{name} holds a lone surrogate, not valid Unicode")
        return value
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT32_MAX:
        raise ValueError(f"{name} is {_shown(value)}, not an integer in 0..{INT32_MAX}")
    return value


def _shown(value: object) -> str:
    """A short rendering of a JSON value for an error string."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 40 else f"{text[:37]}..."


@dataclass
class TarSample:
    """One sample of a tar: its key, raw image bytes and type, caption, img2dataset record and error.

    ``record`` holds the :data:`RECORD_FIELDS` the ``.json`` gave, each checked (a field it lacks is absent).
    """

    key: str
    image: bytes | None = None
    image_type: str | None = None
    caption: str | None = None
    record: dict[str, str | int | None] = field(default_factory=dict)
    error: str | None = None

    @property
    def url(self) -> str | None:
        """The image URL img2dataset recorded (``None`` when the record lacks it)."""
        url = self.record.get("url")
        return url if isinstance(url, str) else None

    def size(self, name: str) -> int | None:
        """A size field of the record (``width``, ``original_height`` ...), ``None`` when it has none."""
        value = self.record.get(name)
        return value if isinstance(value, int) else None


def _split(name: str) -> tuple[str, str]:
    """``dir/000001.jpg`` -> (``dir/000001``, ``jpg``): key up to the first dot of the file name, lower-case type."""
    head, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    key = f"{head}/{stem}" if head else stem
    return key, ext.lower() if dot else ""


def _member_type(info: tarfile.TarInfo) -> str:
    """What a member that is neither a file nor a link is, in words."""
    kinds = {tarfile.CHRTYPE: "character device", tarfile.BLKTYPE: "block device", tarfile.FIFOTYPE: "fifo"}
    return kinds.get(info.type, f"member of tar type {info.type!r}")


class TarShard:
    """The samples of one tar file: headers are read on opening (cheap: data is skipped), data on iteration.

    Regular files, hard links and symbolic links are members of their key's sample; directories are not
    members; any other member (a fifo, a device) is, and fails its sample as ``unknown_member``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.name = Path(self.path).name
        self.members: dict[str, list[tarfile.TarInfo]] = {}
        self.files: dict[str, tarfile.TarInfo] = {}  # regular members and links, by normalised name
        self.tail_error: str | None = None
        self._tar: tarfile.TarFile | None = None
        try:
            self._tar = tarfile.open(self.path, mode="r:")  # noqa: SIM115 - closed by close() / __exit__
        except (OSError, tarfile.TarError, EOFError) as err:
            self.tail_error = error(UNREADABLE_TAR, f"{self.name}: {err}")
            return
        while True:
            try:
                info = self._tar.next()
            except (OSError, tarfile.TarError, EOFError) as err:
                self.tail_error = error(
                    UNREADABLE_TAR, f"{self.name}: headers break off after {self.sample_count} samples ({err})"
                )
                break
            if info is None:
                self._check_end()
                break
            if info.isdir():
                continue
            self.files.setdefault(posixpath.normpath(info.name), info)
            self.members.setdefault(_split(info.name)[0], []).append(info)

    def _check_end(self) -> None:
        """Flag a tar cut inside a header or its end marker (tarfile reads both as a normal end)."""
        assert self._tar is not None
        end = self._tar.offset  # where the end-of-archive zero blocks start
        size = Path(self.path).stat().st_size
        if size < end + 2 * tarfile.BLOCKSIZE:
            self.tail_error = error(
                UNREADABLE_TAR,
                f"{self.name}: ends without the end-of-archive marker after {self.sample_count} samples (truncated?)",
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

    def _where(self, info: tarfile.TarInfo) -> str:
        """``TAR/MEMBER``, printable: how error strings name a member."""
        return f"{self.name}/{printable(info.name)}"

    def _target(self, info: tarfile.TarInfo) -> tarfile.TarInfo:
        """The file a member stands for: itself, or the file its links end at.

        Raises ``LookupError`` for a member that is neither a file nor a link (a fifo ...), ``ValueError`` saying
        why for a link that ends at no file of the tar (missing, outside it, a loop).
        """
        seen = 0
        while not info.isfile():
            if not (info.islnk() or info.issym()):
                raise LookupError(f"is a {_member_type(info)}")
            if seen == _MAX_LINKS:
                raise ValueError(f"more than {_MAX_LINKS} links in a row (a loop?)")
            seen += 1
            base = "" if info.islnk() else posixpath.dirname(info.name)
            name = posixpath.normpath(posixpath.join(base, info.linkname))
            if info.linkname.startswith("/") or name == ".." or name.startswith("../"):
                raise ValueError(f"links to {printable(info.linkname)!r}, outside the tar")
            found = self.files.get(name)
            if found is None:
                raise ValueError(f"links to {printable(info.linkname)!r}, which the tar does not hold")
            info = found
        return info

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
        if not is_unicode(key):
            sample.key = printable(key)
            problems.append(error(BAD_METADATA, f"{self._where(infos[0])}: the member's name is not UTF-8"))
        seen: set[str] = set()
        for info in infos:
            kind = _split(info.name)[1]
            where = self._where(info)
            role = "image" if kind in IMAGE_TYPES else {CAPTION_TYPE: "caption", METADATA_TYPE: "record"}.get(kind)
            try:
                target = self._target(info)
            except LookupError as err:
                problems.append(error(UNKNOWN_MEMBER, f"{where} {err}"))
                continue
            except ValueError as err:
                problems.append(error(UNRESOLVED_LINK, f"{where} {err}"))
                continue
            if role is None:
                problems.append(error(UNKNOWN_MEMBER, where))
                continue
            if role in seen:
                problems.append(error(UNKNOWN_MEMBER, f"{where}: a second {role} of {printable(key)}"))
                continue
            seen.add(role)
            data = self._read(target)
            if data is None:
                problems.append(error(TRUNCATED_MEMBER, where))
            elif role == "image":
                sample.image, sample.image_type = data, kind
            elif role == "caption":
                try:
                    sample.caption = data.decode("utf-8")
                except UnicodeDecodeError as err:
                    problems.append(error(BAD_METADATA, f"{where} is not UTF-8 ({err.reason})"))
            else:
                problem = self._record(sample, data)
                if problem is not None:
                    problems.append(error(BAD_METADATA, f"{where}: {problem}"))
        if sample.image_type is None and not any(p.startswith(TRUNCATED_MEMBER) for p in problems):
            problems.append(error(MISSING_IMAGE, f"{self.name}/{printable(key)}"))
        if sample.caption is None and not problems:
            problems.append(error(MISSING_CAPTION, f"{self.name}/{printable(key)}"))
        if problems:
            sample.error = problems[0]
            sample.image = None
        return sample

    @staticmethod
    def _record(sample: TarSample, data: bytes) -> str | None:
        """Read a ``.json`` member's :data:`RECORD_FIELDS` into ``sample.record``; what is wrong, or ``None``."""
        try:
            record = json.loads(data)
        except ValueError as err:  # not UTF-8, not JSON, an integer of over 4,300 digits
            return str(err)
        except RecursionError:
            return "nests too deep"
        if not isinstance(record, dict):
            return "not a JSON object"
        for name in RECORD_FIELDS:
            if name in record:
                try:
                    sample.record[name] = check_field(name, record[name])
                except ValueError as err:
                    return str(err)
        return None
