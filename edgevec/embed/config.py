"""What edgevec knows about a sentence-embedding model, and the names of its files.

Shared by the embedder (which loads models) and the model builder (which writes them), so
that neither imports the other at module level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ModelError

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "edgevec-model.json"


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
    def from_json(cls, d: dict[str, Any]) -> "ModelConfig":
        try:
            return cls(name=str(d["name"]), dim=int(d["dim"]),
                       max_tokens=int(d.get("max_tokens", 256)),
                       pooling=str(d.get("pooling", "mean")),
                       normalize=bool(d.get("normalize", True)), variant=d.get("variant"),
                       sha256=dict(d.get("sha256") or {}),
                       weight_levels=(None if d.get("weight_levels") is None
                                      else int(d["weight_levels"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"model config is missing or mistypes a field: {exc}") from None
