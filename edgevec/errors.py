"""The exception tree: every error edgevec raises derives from `EdgevecError`.

Messages name the offending value, the limit it broke and, where there is one,
the fix. Errors about a file carry its path and, for format problems, the byte
offset where the problem was found.
"""

from __future__ import annotations

import os

__all__ = [
    "EdgevecError",
    "FormatError",
    "NotAnEdgevecFile",
    "UnsupportedVersion",
    "ChecksumMismatch",
    "TruncatedFile",
    "HeaderError",
    "MalformedDirectory",
    "SectionError",
    "SectionOutOfBounds",
    "SectionMisaligned",
    "SectionOverlap",
    "SectionLengthMismatch",
    "StringTableError",
    "IndexNotFound",
    "AccessDenied",
    "IndexExists",
    "IndexStateError",
    "ReadOnlyError",
    "LockedError",
    "WriteFailed",
    "InvalidInput",
    "DimensionMismatch",
    "DuplicateId",
    "IdTypeMismatch",
    "UnknownId",
    "ModelMismatch",
    "ModelError",
    "UnsafeModel",
]


class EdgevecError(Exception):
    """Root of every error edgevec raises."""


# --- the file ---------------------------------------------------------------------------


class FormatError(EdgevecError):
    """The bytes on disk break a rule of formats/SPEC.md.

    `path` and `offset` (a byte offset, or None) say where.
    """

    def __init__(self, message: str, *, path: str | os.PathLike | None = None,
                 offset: int | None = None) -> None:
        self.path = None if path is None else os.fspath(path)
        self.offset = offset
        where = []
        if self.path is not None:
            where.append(self.path)
        if offset is not None:
            where.append(f"byte {offset}")
        prefix = f"{': '.join(where)}: " if where else ""
        super().__init__(prefix + message)


class NotAnEdgevecFile(FormatError):
    """The file does not start with the edgevec magic number (rule F1)."""


class UnsupportedVersion(FormatError):
    """The file's major format version is not one this reader understands (rule F2)."""


class ChecksumMismatch(FormatError):
    """A CRC32 stored in the file does not match the bytes it covers."""


class TruncatedFile(FormatError):
    """The file is shorter than its header or commit record says it is."""


class HeaderError(FormatError):
    """A field of the fixed header or of a commit slot is invalid."""


class MalformedDirectory(FormatError):
    """The JSON directory is not valid UTF-8/JSON or misses or mistypes a required key."""


class SectionError(FormatError):
    """A section descriptor is inconsistent with the rest of the file."""


class SectionOutOfBounds(SectionError):
    """A section reaches outside the committed part of the file."""


class SectionMisaligned(SectionError):
    """A section does not start on a 64-byte boundary."""


class SectionOverlap(SectionError):
    """Two sections share bytes."""


class SectionLengthMismatch(SectionError):
    """A section's byte length disagrees with its dtype and shape, or its shape with the rows."""


class StringTableError(FormatError):
    """A string table's offsets are not monotonic, overrun its bytes, or hold invalid UTF-8."""


# --- using an index -----------------------------------------------------------------------


class IndexNotFound(EdgevecError, FileNotFoundError):
    """The path does not exist."""


class AccessDenied(EdgevecError, PermissionError):
    """The operating system refused access to the path (permissions, read-only location)."""


class IndexExists(EdgevecError, FileExistsError):
    """`Index.create` was asked to write where a file already exists."""


class IndexStateError(EdgevecError):
    """The index is closed, or the operation does not fit its current state."""


class ReadOnlyError(IndexStateError):
    """A write was attempted on an index opened read-only."""


class LockedError(EdgevecError):
    """Another writer holds the index's lock."""


class WriteFailed(EdgevecError):
    """Writing to disk failed (full disk, quota, I/O error); the committed state is intact."""


class InvalidInput(EdgevecError, ValueError):
    """An argument has the wrong type, shape or value."""


class DimensionMismatch(InvalidInput):
    """Vectors do not have the index's dimension."""


class DuplicateId(InvalidInput):
    """An id is already present in the index, or repeated within one batch."""


class IdTypeMismatch(InvalidInput):
    """An id's type (str or int) differs from the index's id type."""


class UnknownId(EdgevecError, KeyError):
    """An id is not in the index."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the sentence readable
        return str(self.args[0]) if self.args else ""


class ShardTimeout(EdgevecError, TimeoutError):
    """A shard of a set served on Ray did not answer a search in time."""


class ModelMismatch(EdgevecError):
    """Vectors or an embedder do not match the model the index was built with."""


class ModelError(EdgevecError):  # noqa: N818 - named like the other errors
    """A model directory or file is missing, damaged, does not match its manifest, or
    failed while embedding."""


class UnsafeModel(ModelError):
    """A model (ONNX graph, tokenizer.json or config) breaks a rule of the model gate
    (formats/SPEC.md, "Security"): external data, an operator off the allow-list, control
    flow, oversized shapes, a backtracking regex, out-of-range config values."""


class MissingExtra(EdgevecError, ImportError):
    """A feature needs an optional dependency that is not installed; the message names the
    extra to install (pip install 'edgevec[name]')."""

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(f"{feature} needs the optional dependencies of edgevec[{extra}]: "
                         f"pip install 'edgevec[{extra}]'")
        self.feature, self.extra = feature, extra

    def __reduce__(self):  # pickles (to a worker process and back) with its arguments
        return type(self), (self.feature, self.extra)


def reraise_interrupts(exc: BaseException) -> None:
    """Ctrl-C and sys.exit pass through the handlers that turn a native library's failure
    into an EdgevecError (pyo3 libraries such as `tokenizers` panic with a BaseException,
    so those handlers catch BaseException)."""
    if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
        raise exc


def from_os_error(exc: OSError, doing: str, fix: str, path=None) -> EdgevecError:
    """The EdgevecError for an OSError met while `doing` something: permission problems are
    AccessDenied, a missing file or folder InvalidInput, anything else (a full disk, an I/O
    error) WriteFailed; the message names the file (`path`, else the error's), the reason
    and `fix`."""
    import errno
    name = os.fspath(path) if path is not None else exc.filename
    where = f"{name}: " if name else ""
    reason = exc.strerror or str(exc)
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM,
                                                         errno.EROFS):
        return AccessDenied(f"{where}permission denied while {doing} ({reason}); {fix}")
    if isinstance(exc, FileNotFoundError):
        return InvalidInput(f"{where}no such file or folder while {doing}; {fix}")
    return WriteFailed(f"{where}{doing} failed ({reason}); {fix}")


def os_errors_as_edgevec_errors(doing: str, fix: str):
    """Decorator: an OSError escaping the function becomes `from_os_error(exc, doing,
    fix)`. For functions whose disk work happens outside the index writer (a build's
    staging, the model cache). The wrapped function keeps its signature."""
    import functools

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except EdgevecError:  # IndexExists is an OSError too: already one of ours
                raise
            except OSError as exc:
                raise from_os_error(exc, doing, fix) from None
        return wrapper
    return decorate
