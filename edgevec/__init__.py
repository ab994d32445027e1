"""edgevec: an embedded, on-device retrieval engine in one memory-mapped file.

Importing edgevec compiles nothing, loads no model, starts no threads and changes no
global configuration.
"""

from .errors import (
    AccessDenied,
    ChecksumMismatch,
    DimensionMismatch,
    DuplicateId,
    EdgevecError,
    FormatError,
    IdTypeMismatch,
    IndexExists,
    IndexNotFound,
    IndexStateError,
    InvalidInput,
    LockedError,
    MissingExtra,
    ModelMismatch,
    NotAnEdgevecFile,
    ReadOnlyError,
    ShardTimeout,
    TruncatedFile,
    UnknownId,
    UnsafeModel,
    UnsupportedVersion,
    WriteFailed,
)
from .cpu import hardware
from .embed import Embedder, ModelError
from .index import Index, info, open, verify  # noqa: A004 - edgevec.open is public
from .results import BatchResults, Hit, Record, Results
from .sets import write_manifest
from .shards import ShardSet, merge, open_many

__version__ = "0.1.0"

__all__ = [
    "AccessDenied",
    "BatchResults",
    "ChecksumMismatch",
    "DimensionMismatch",
    "DuplicateId",
    "Embedder",
    "EdgevecError",
    "FormatError",
    "Hit",
    "IdTypeMismatch",
    "Index",
    "IndexExists",
    "IndexNotFound",
    "IndexStateError",
    "InvalidInput",
    "LockedError",
    "MissingExtra",
    "ModelError",
    "ModelMismatch",
    "NotAnEdgevecFile",
    "ReadOnlyError",
    "Record",
    "Results",
    "ShardSet",
    "ShardTimeout",
    "TruncatedFile",
    "UnknownId",
    "UnsafeModel",
    "UnsupportedVersion",
    "WriteFailed",
    "__version__",
    "hardware",
    "info",
    "open",
    "merge",
    "open_many",
    "verify",
    "write_manifest",
]
