"""Text embedding: an ONNX sentence-embedding model + its tokenizer, offline, on the CPU.

Nothing here loads onnxruntime until a model is loaded.
"""

from .embedder import Embedder, ModelConfig, ModelError

__all__ = ["Embedder", "ModelConfig", "ModelError", "build_model", "list_models"]


def build_model(*args, **kwargs):
    from .models import build_model as _build
    return _build(*args, **kwargs)


def list_models():
    from .models import list_models as _list
    return _list()
