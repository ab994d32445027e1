"""What edgevec knows about a sentence-embedding model, and the names of its files.

Shared by the embedder (which loads models) and the model builder (which writes them), so
that neither imports the other at module level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ModelError, UnsafeModel

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "edgevec-model.json"
# bounds on what a config may say (it may come from an untrusted index file)
MAX_DIM = 65536
MAX_TOKENS = 8192     # and within the model's position table, where the gate finds one
MAX_NAME = 200
POOLINGS = ("mean", "cls", "none")


@dataclass(frozen=True)
class ModelConfig:
    """What edgevec needs to know about a sentence-embedding model."""

    name: str
    dim: int
    max_tokens: int = 256
    pooling: str = "mean"          # "mean", "cls", or "none" (the model pools itself)
    normalize: bool = True
    variant: str | None = None
    sha256: dict | None = None     # file name -> hex digest of model.onnx / tokenizer.json
    # dyn8: integer weights lie within +-weight_levels (63; builds without it had 127)
    weight_levels: int | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"name": self.name, "dim": self.dim, "max_tokens": self.max_tokens,
               "pooling": self.pooling, "normalize": self.normalize,
               "variant": self.variant, "sha256": self.sha256 or {}}
        if self.weight_levels is not None:
            out["weight_levels"] = self.weight_levels
        return out

    @classmethod
    def from_json(cls, d: Any, source: str = "model config") -> "ModelConfig":
        """A config read from JSON, every value type- and range-checked (it may come from
        an untrusted index file): UnsafeModel names the field, the value and the limit."""
        if not isinstance(d, dict):
            raise UnsafeModel(f"{source}: the model config must be a JSON object, got "
                              f"{type(d).__name__}")
        if "name" not in d or "dim" not in d:
            raise ModelError(f"{source}: the model config lacks "
                             f"{'name' if 'name' not in d else 'dim'}")

        def bad(field: str, value: Any, limit: str) -> UnsafeModel:
            return UnsafeModel(f"{source}: config {field}={value!r:.60} is out of range: "
                               f"{limit}")

        def integer(field: str, lo: int, hi: int, default: Any = None,
                    optional: bool = False) -> Any:
            value = d.get(field, default)
            if value is None and optional:
                return None
            if type(value) is not int or not lo <= value <= hi:
                raise bad(field, value, f"an integer in {lo}..{hi}")
            return value

        name, variant = d["name"], d.get("variant")
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
            raise bad("name", name, f"a string of 1..{MAX_NAME} characters")
        if variant is not None and (not isinstance(variant, str) or len(variant) > MAX_NAME):
            raise bad("variant", variant, f"null or a string of at most {MAX_NAME} characters")
        pooling, normalize = d.get("pooling", "mean"), d.get("normalize", True)
        if pooling not in POOLINGS:
            raise bad("pooling", pooling, f"one of {', '.join(POOLINGS)}")
        if not isinstance(normalize, bool):
            raise bad("normalize", normalize, "true or false")
        digests = d.get("sha256") or {}
        if not isinstance(digests, dict) or len(digests) > 8 or not all(
                isinstance(k, str) and len(k) <= MAX_NAME and isinstance(v, str)
                and len(v) == 64 and all(c in "0123456789abcdef" for c in v)
                for k, v in digests.items()):
            raise bad("sha256", digests, "an object of file name -> 64 hex digits")
        return cls(name=name, dim=integer("dim", 1, MAX_DIM),
                   max_tokens=integer("max_tokens", 1, MAX_TOKENS, 256), pooling=pooling,
                   normalize=normalize, variant=variant, sha256=dict(digests),
                   weight_levels=integer("weight_levels", 1, 127, optional=True))
