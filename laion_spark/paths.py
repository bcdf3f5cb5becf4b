"""The paths a user gives: normalised once, checked before anything is written, handed to every engine alike.

One rule, the same on every engine (nothing but the standard library here: :mod:`laion_spark.stage` uses it):

* **Normalised once** (:func:`normalise_path`, called by :meth:`laion_spark.stage.Param.check` for every path
  parameter and by the commands' own path options): ``~`` expanded, a relative path made absolute against the
  working directory, ``.`` and ``..`` collapsed (symbolic links are kept as given). ``file:`` URIs are accepted
  (``file:///data/my%20lake``, ``file:/data/x``, ``file://localhost/data/x``) and become the local path they
  name, percent-decoded as URIs are; a plain path is taken literally: ``p%20q`` names a folder of five
  characters, ``a#b`` and ``a?b`` name what they say. Other URIs (``s3://``, ``dbfs:/`` ...) pass unchanged.
* **Refused with one line** (:class:`PathError`, exit status 2) before anything is written: an empty path, a
  control character (newline, tab, NUL ...: no engine takes them), text that is not UTF-8, a name longer
  than 255 bytes or a path longer than 4095 (the OS refuses them), a ``file:`` URI naming another host.
* **Checked before a write** (:func:`unwritable`): the deepest existing folder of an output must be a folder
  the process can create files in (probed: root passes every permission check, ``/proc`` still refuses).
* **Handed to the engine** by :func:`engine_path`: Spark's and Sail's path parsers read a path as a URL, so a
  space, ``#``, ``?``, ``%``, ``:``, a glob character or a non-ASCII letter makes them write somewhere else
  (Sail 0.7: ``a b`` becomes a folder ``a%20b``, ``a?b`` its parent; Hadoop: ``a:b`` is refused, ``a*b``
  globbed). A local path made of :data:`ENGINE_SAFE` characters only is passed as it is; any other is passed
  through an alias: a symbolic link, named by a digest of the folder it points to, in a folder of the user's
  own under the system's temporary directory (:func:`alias_root`). The engine writes through the link into
  the real folder; the tables keep relative paths, so they read the same through either.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .errors import InputError

#: Characters every engine takes in a local path as they are (checked on Sail 0.7 and classic Spark 4.0).
ENGINE_SAFE = re.compile(r"[A-Za-z0-9/._+,@=-]*")
#: The longest file or folder name, and the longest path, in bytes (Linux's NAME_MAX and PATH_MAX - 1).
NAME_MAX, PATH_MAX = 255, 4095
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_PROBE = ".laion-spark-probe-"


class PathError(InputError):
    """A path cannot be used: the message says why (the caller names the option or key)."""


def is_uri(text: str) -> bool:
    """Whether ``text`` is a URI other than ``file:`` (``s3://``, ``gs://``, ``dbfs:/`` ...)."""
    return ("://" in text or text.startswith("dbfs:")) and not text.startswith("file:")


def normalise_path(value: str | os.PathLike, base: str | os.PathLike | None = None) -> str:
    """``value`` as the absolute local path it names (see the module docstring), or a URI unchanged.

    ``base``: the folder a relative path starts from (default: the working directory). Raises
    :class:`PathError` saying what is wrong with the path (it quotes the path with ``repr``: one line).
    """
    text = os.fspath(value)
    if not isinstance(text, str):
        raise PathError(f"{text!r} is not text")
    if not text:
        raise PathError("the path is empty")
    if _CONTROL.search(text):
        raise PathError(f"{text!r} holds a control character ({_CONTROL.search(text).group()!r}); no engine takes it")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise PathError(f"{text!r} is not valid UTF-8 text") from None
    if is_uri(text):
        return text
    if text.startswith("file:"):
        text = _file_uri_path(text)
    path = os.path.expanduser(text)
    if not os.path.isabs(path):
        path = os.path.join(os.fspath(base) if base is not None else os.getcwd(), path)
    path = os.path.normpath(path)
    if path.startswith("//"):  # POSIX keeps a leading '//'; one is the same folder
        path = "/" + path.lstrip("/")
    _check_lengths(path)
    return path


def _file_uri_path(text: str) -> str:
    parts = urlsplit(text)
    if parts.netloc not in ("", "localhost"):
        raise PathError(f"{text!r} names host {parts.netloc!r}; a file: URI must name a local path")
    if parts.query or parts.fragment:  # an unencoded ? or #: the URI does not say the path it means
        raise PathError(f"{text!r}: ? and # in a file: URI must be percent-encoded (%3F, %23)")
    path = unquote(parts.path, errors="strict")
    if not path.startswith("/"):
        raise PathError(f"{text!r} is not an absolute file: URI (file:///path)")
    if _CONTROL.search(path):
        raise PathError(f"{text!r} holds an encoded control character; no engine takes it")
    return path


def _check_lengths(path: str) -> None:
    encoded = path.encode("utf-8")
    if len(encoded) > PATH_MAX:
        raise PathError(f"{path[:60]!r}...: {len(encoded)} bytes, longer than a path may be ({PATH_MAX})")
    for name in path.split("/"):
        if len(name.encode("utf-8")) > NAME_MAX:
            raise PathError(f"{path[:60]!r}...: the name {name[:40]!r}... is longer than {NAME_MAX} bytes")


def is_within(path: str, folder: str) -> bool:
    """Whether the normalised ``path`` is ``folder`` or lies under it (compared by their text, as given)."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def unwritable(path: str) -> str | None:
    """Why nothing can be written at the local ``path`` (a file or folder to create or replace), or ``None``.

    The deepest part of ``path`` that exists must be a folder (or ``path`` itself an existing file, replaced in
    its folder) in which a file can be created: probed by creating and removing an empty hidden file there,
    since permission bits do not tell (root passes them, ``/proc`` still refuses). URIs are not probed.
    """
    if is_uri(path):
        return None
    target = Path(path)
    existing = target
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if existing == target and target.is_file():
        existing = target.parent
    if not existing.is_dir():
        what = "a file" if existing.is_file() else "not a folder"
        return f"{existing} is {what}, so {path} cannot be written"
    try:
        handle, probe = tempfile.mkstemp(prefix=_PROBE, dir=existing)
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        return f"cannot write in {existing} ({err.strerror or type(err).__name__})"
    return None


def alias_root() -> Path:
    """The folder of the engine aliases: ``laion-spark-paths-<uid>`` in the temporary directory, the user's own.

    Raises :class:`PathError` when it cannot be made safely (it exists and is not a folder of this user's that
    only they can write, or the temporary directory's own path is not engine-safe).
    """
    root = Path(tempfile.gettempdir()) / f"laion-spark-paths-{os.getuid()}"
    if not ENGINE_SAFE.fullmatch(str(root)):
        raise PathError(f"the temporary directory {str(root.parent)!r} is not a path every engine takes; set TMPDIR")
    try:
        root.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(root)
    except OSError as err:
        raise PathError(f"cannot make the engine alias folder {root} ({err.strerror})") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise PathError(f"{root} is not a folder that only this user can write: remove it")
    return root


def engine_path(path: str | os.PathLike, *, create: bool = False) -> str:
    """The text to hand an engine for the path ``path`` (a normalised local path, or a URI: unchanged).

    A path of :data:`ENGINE_SAFE` characters is returned as it is. Otherwise its part up to the last name
    holding another character is replaced by an alias (see the module docstring); with ``create`` that part is
    made first (a folder the engine is about to write into).
    """
    text = os.fspath(path)
    if is_uri(text) or ENGINE_SAFE.fullmatch(text):
        return text
    names = text.split("/")
    last = max(i for i, name in enumerate(names) if not ENGINE_SAFE.fullmatch(name))
    prefix, rest = "/".join(names[: last + 1]), names[last + 1 :]
    if create:
        os.makedirs(prefix, exist_ok=True)
    alias = alias_root() / hashlib.sha256(prefix.encode("utf-8")).hexdigest()[:24]
    if not (os.path.islink(alias) and os.readlink(alias) == prefix):
        scratch = alias.with_name(f"{alias.name}.{uuid.uuid4().hex}")
        os.symlink(prefix, scratch)
        os.replace(scratch, alias)  # atomic: a concurrent job sees the old link or the new one
    return "/".join([str(alias), *rest])
