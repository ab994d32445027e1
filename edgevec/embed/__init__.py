"""Text embedding: an ONNX sentence-embedding model + its tokenizer, offline, on the CPU.

Nothing here loads onnxruntime until a model is loaded.
"""

from ..errors import ModelError
from .config import ModelConfig
from .embedder import Embedder

__all__ = ["Embedder", "ModelConfig", "ModelError", "build_model", "list_models"]


def __getattr__(name: str):
    # build_model and list_models live in models.py, which imports subprocess, zipfile and
    # friends: loaded on first use, not by `import edgevec`; the functions themselves are
    # returned, with their real signatures
    if name in ("build_model", "list_models"):
        from . import models
        return getattr(models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
