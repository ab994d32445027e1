"""What this CPU offers edgevec: `edgevec.hardware()` and a one-line summary.

Features come from LLVM's host detection (what Numba compiles for, on any OS). Numba
compiles for `NUMBA_CPU_NAME` with the feature string `NUMBA_CPU_FEATURES` when they are
set; note that the name alone does not restrict the instruction set: without
NUMBA_CPU_FEATURES Numba still passes the host's features, so `NUMBA_CPU_NAME=haswell`
on an AVX-512 machine still emits AVX-512. The embedding report runs onnxruntime's
integer GEMM on a worst case (see edgevec.embed.exactness) instead of guessing from
feature flags.
"""

from __future__ import annotations

import os
import platform
from typing import Any

FEATURES = ("popcnt", "avx2", "avx512f", "avx512bw", "avx512vpopcntdq", "avx512vnni",
            "avxvnni")


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _feature_set(flat: str) -> set[str]:
    return {f[1:] for f in flat.split(",") if f.startswith("+")}


def popcount_form(features: set[str], *, vector: bool = True) -> str:
    """How a Hamming kernel counts bits when compiled for `features`: the batch kernel's
    loop is vectorised over rows (`vector`), the single-query one is unrolled over the
    words of a row. tests/test_kernels.py checks the real assembly."""
    if vector and "avx512vpopcntdq" in features:
        return "vpopcntq (AVX-512 VPOPCNTDQ)"
    if vector and "avx2" in features:
        return "vpshufb nibble lookup (AVX2)"
    if "popcnt" in features:
        return "popcnt"
    return "bit arithmetic (no popcount instruction)"


def hardware(*, probe_onnxruntime: bool = True) -> dict[str, Any]:
    """The CPU features that matter to edgevec, the Numba target, onnxruntime's version
    and which embedding variants compute the same vectors here as everywhere else.

    Returns a dict (JSON-serialisable). `probe_onnxruntime=False` skips loading
    onnxruntime (the embedding part is then left out)."""
    import llvmlite.binding as ll
    import numba
    host = {k for k, v in ll.get_host_cpu_features().items() if v}
    target_flags = numba.config.CPU_FEATURES
    target = _feature_set(target_flags) if target_flags is not None else host
    out: dict[str, Any] = {
        "machine": platform.machine(),
        "cpu": ll.get_host_cpu_name(),
        "cpu_model": _cpu_model(),
        "features": {f: f in host for f in FEATURES},
        "numba": {
            "version": numba.__version__,
            "target": numba.config.CPU_NAME or ll.get_host_cpu_name(),
            "target_features": "host" if target_flags is None else "NUMBA_CPU_FEATURES",
            "popcount_single_query": popcount_form(target, vector=False),
            "popcount_batch": popcount_form(target),
            "threads": numba.config.NUMBA_NUM_THREADS,
            "cache_dir": os.environ.get("NUMBA_CACHE_DIR") or "(next to the sources)",
        },
    }
    if probe_onnxruntime:
        import onnxruntime as ort
        from .embed.bert_onnx import DYN8_WEIGHT_LEVELS
        from .embed.exactness import integer_products_exact
        dyn8 = integer_products_exact(DYN8_WEIGHT_LEVELS)
        out["onnxruntime"] = {"version": ort.__version__,
                              "int8_products_exact_8bit_weights": integer_products_exact(127),
                              "int8_products_exact_7bit_weights": dyn8}
        same = "float32 compute: the same vectors on every CPU, up to float rounding"
        out["embedding_variants"] = {
            "int8": same, "fp32": same,
            "dyn8": ("integer products exact here (7-bit weights): the same vectors as on "
                     "any CPU" if dyn8 else
                     "NOT exact on this CPU: edgevec refuses it here; use int8"),
        }
    return out


def summary(info: dict[str, Any] | None = None) -> str:
    """One line for benchmark headers and test failures."""
    info = info or hardware()
    feats = info["features"]
    have = " ".join(f for f in FEATURES if feats[f]) or "none"
    nb = info["numba"]
    line = (f"{info['cpu_model'] or info['cpu']} [{info['machine']}, LLVM: {info['cpu']}; "
            f"{have}]; numba {nb['version']} -> {nb['target']} ({nb['target_features']} "
            f"features): popcount {nb['popcount_single_query']} / batch {nb['popcount_batch']}")
    ort_info = info.get("onnxruntime")
    if ort_info:
        line += (f"; onnxruntime {ort_info['version']}: 8-bit integer products "
                 f"{'exact' if ort_info['int8_products_exact_8bit_weights'] else 'saturate'}"
                 f", dyn8 {'exact' if ort_info['int8_products_exact_7bit_weights'] else 'NOT exact'}")
    return line


def format_report(info: dict[str, Any]) -> str:
    """Multi-line text of `hardware()` for the CLI."""
    lines = [f"{'cpu':>22}: {info['cpu_model'] or '?'} (LLVM name {info['cpu']}, "
             f"{info['machine']})"]
    lines += [f"{f:>22}: {'yes' if v else 'no'}" for f, v in info["features"].items()]
    nb = info["numba"]
    lines += [f"{'numba':>22}: {nb['version']}, compiles for {nb['target']} "
              f"({nb['target_features']} features), {nb['threads']} threads",
              f"{'popcount, 1 query':>22}: {nb['popcount_single_query']}",
              f"{'popcount, batches':>22}: {nb['popcount_batch']}",
              f"{'numba cache':>22}: {nb['cache_dir']}"]
    if "onnxruntime" in info:
        o = info["onnxruntime"]
        lines.append(f"{'onnxruntime':>22}: {o['version']}; uint8 x int8 products exact with "
                     f"8-bit weights: {'yes' if o['int8_products_exact_8bit_weights'] else 'no (saturating int16, no VNNI)'}"
                     f"; with 7-bit: {'yes' if o['int8_products_exact_7bit_weights'] else 'no'}")
        lines += [f"{'variant ' + k:>22}: {v}" for k, v in info["embedding_variants"].items()]
    return "\n".join(lines)
