"""onnxruntime sessions, and the per-machine cache that makes creating them cheap.

Creating a session for an int8 model optimises its graph: every weight's dequantisation
(int8 -> float32, times its scales) is constant-folded, which took 0.33 s of a new
process's 0.4 s to load MiniLM. The optimised graph does not depend on the CPU at the
EXTENDED level (no hardware-specific layouts), so the first session of a model on a
machine saves it (graph + float32 weights in an external file, ~55 MB for MiniLM) under
the cache root, keyed by the model's sha256 and onnxruntime's version; later processes
load that with optimisation off: 0.07 s, the same vectors bit for bit. A cache that
cannot be written (read-only, full disk) or read (damaged) is skipped or rebuilt: it is
never needed for a correct answer.

Every graph passes the model gate (gate.py) before onnxruntime sees it: the model's own
bytes before a session is built from them (so the cache only ever holds graphs built from
gated bytes, keyed by their digest), and the cached graph before it is loaded, allowed
external data only in its own weights file.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from ..errors import UnsafeModel
from ..fileio import fsync_path
from .gate import ModelFacts, check_model


def _log():
    import logging  # only when there is something to say: 2-5 ms a process otherwise
    return logging.getLogger("edgevec")


OPTIMIZED_DIR = "optimized"
GRAPH_FILE = "model.onnx"
WEIGHTS_FILE = "weights.bin"
FACTS_FILE = "gate.json"  # what the gate learnt of the model the graph was built from


def cache_root() -> str:
    """$EDGEVEC_MODELS_DIR, else $XDG_CACHE_HOME/edgevec/models, else
    ~/.cache/edgevec/models."""
    root = os.environ.get("EDGEVEC_MODELS_DIR")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                                ".cache")
        root = os.path.join(base, "edgevec", "models")
    return root


def _options(ort, threads: int | None, level, prepack: bool = True):
    opts = ort.SessionOptions()
    if not prepack:
        opts.add_session_config_entry("session.disable_prepacking", "1")
    opts.graph_optimization_level = level
    # int8 weights dequantised once at load, float32 compute (see bert_onnx.py)
    opts.add_session_config_entry("session.disable_quant_qdq", "1")
    opts.inter_op_num_threads = 1
    # onnxruntime's idle threads spin by default and steal the cores the search
    # kernels run on next: a text query took 7.8 ms p50 with spinning, 3.4 ms without
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads is not None:
        opts.intra_op_num_threads = threads
    # errors reach the caller as exceptions (ModelError); do not also print them
    opts.log_severity_level = 4
    return opts


def optimized_dir(sha256: str) -> str:
    import onnxruntime as ort
    return os.path.join(cache_root(), OPTIMIZED_DIR, f"{sha256[:32]}-ort{ort.__version__}")


# cached graphs this process has gated, by (folder, graph size, mtime): an embedder opens
# its session twice (unpacked, then prepacked), and the second open need not gate again
_GATED: dict[tuple, ModelFacts] = {}


def _cached_graph(final: str, allow_control_flow: bool) -> tuple[str, ModelFacts] | None:
    """The cached optimised graph in `final`, gated, and what the gate learnt of the
    model it was built from, or None if there is none."""
    graph = os.path.join(final, GRAPH_FILE)
    try:
        with open(graph, "rb") as f:
            st = os.fstat(f.fileno())
            key = (final, st.st_size, st.st_mtime_ns, allow_control_flow)
            if key in _GATED:
                return graph, _GATED[key]
            data = f.read()
    except OSError:
        return None
    try:
        with open(os.path.join(final, FACTS_FILE), "rb") as f:
            facts = ModelFacts.from_json(f.read())
    except FileNotFoundError:  # cached before graphs were gated: build it again
        shutil.rmtree(final, ignore_errors=True)
        return None
    try:  # absent when no tensor was large enough to be written to it
        weights = os.path.getsize(os.path.join(final, WEIGHTS_FILE))
    except OSError:
        weights = 0
    check_model(data, graph, external={WEIGHTS_FILE: weights},
                allow_control_flow=allow_control_flow)
    _GATED[key] = facts
    return graph, facts


def create_session(model_bytes, sha256: str, *, threads: int | None = None,
                   use_cache: bool = True, prepack: bool = True, source: str = "model.onnx",
                   allow_control_flow: bool = False):
    """An onnxruntime CPU session for `model_bytes` (whose digest is `sha256`), from the
    optimised-graph cache when it holds this model, else built and, if possible, saved
    there. `model_bytes` may be a zero-argument callable: it is called only if the cache
    misses. `prepack=False` skips repacking the weights for the GEMM kernels: the session
    opens in ~15 ms instead of ~85 ms (MiniLM) and each run is ~6 ms slower. Returns the
    session and the gate's facts of the graph. Raises UnsafeModel for a graph the gate
    refuses (`source` names it), else what onnxruntime raises for a model it cannot
    load."""
    import onnxruntime as ort
    final = optimized_dir(sha256)
    if use_cache:
        try:
            cached = _cached_graph(final, allow_control_flow)
            if cached is not None:
                return ort.InferenceSession(cached[0], _options(
                    ort, threads, ort.GraphOptimizationLevel.ORT_DISABLE_ALL, prepack),
                    providers=["CPUExecutionProvider"]), cached[1]
        except Exception as exc:  # noqa: BLE001 - a damaged cache entry: rebuild it
            _log().warning("optimised model cache %s is unreadable (%s); rebuilding it",
                           final, str(exc)[:120])
            shutil.rmtree(final, ignore_errors=True)
    if callable(model_bytes):  # the cache lacks it: now the model itself is needed
        model_bytes = model_bytes()
    facts = check_model(model_bytes, source, allow_control_flow=allow_control_flow)
    if not use_cache:
        return ort.InferenceSession(model_bytes, _options(
            ort, threads, ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, prepack),
            providers=["CPUExecutionProvider"]), facts
    try:
        parent = os.path.dirname(final)
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(dir=parent, prefix=".tmp-")
    except OSError as exc:
        _log().debug("cannot cache optimised models in %s: %s", cache_root(), exc)
        return create_session(model_bytes, sha256, threads=threads, use_cache=False,
                              prepack=prepack, source=source,
                              allow_control_flow=allow_control_flow)
    opts = _options(ort, threads, ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, prepack)
    opts.optimized_model_filepath = os.path.join(tmp, GRAPH_FILE)
    opts.add_session_config_entry(
        "session.optimized_model_external_initializers_file_name", WEIGHTS_FILE)
    opts.add_session_config_entry(
        "session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    try:
        session = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - saving failed (full disk?), or the model is bad
        shutil.rmtree(tmp, ignore_errors=True)
        return create_session(model_bytes, sha256, threads=threads, use_cache=False,
                              prepack=prepack, source=source,
                              allow_control_flow=allow_control_flow)
    try:
        # onnxruntime's optimiser may write an operator the gate does not know: such a
        # graph is not cached (a later load would refuse it and build it again anyway)
        with open(os.path.join(tmp, FACTS_FILE), "wb") as f:
            f.write(facts.to_json())
        _cached_graph(tmp, allow_control_flow)
        for name in (GRAPH_FILE, WEIGHTS_FILE, FACTS_FILE):
            fsync_path(os.path.join(tmp, name))
        os.rename(tmp, final)  # fails harmlessly if another process cached it first
    except (OSError, UnsafeModel) as exc:
        _log().debug("optimised model not cached in %s: %s", final, exc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return session, facts
