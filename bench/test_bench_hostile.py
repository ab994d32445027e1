"""Hostile models cost little (issue 23): each case of tests/test_hostile_models.py, stored
in an index and queried in a fresh process, must end in its EdgevecError within 1 s and
100 MB over a process that has loaded a benign model, reading no file outside the index.

    python3 dev.py bench -k hostile -s

Each case runs in its own interpreter (the peak RSS of a process only grows); the child
writes one JSON record per case with one os.write. Time is reported, not asserted (the
machines are shared); memory and the error class are asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from edgevec.cpu import summary

TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")

CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, sys.argv[1])
os.chdir(sys.argv[2])
import numpy as np
import edgevec
import test_hostile_models as t
kind, case = sys.argv[3], sys.argv[4]
def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
warm = t.planted_index("warm.edgevec", t.benign())
t.text_query(warm)  # onnxruntime, tokenizers and the scan loaded: the baseline
before = rss()
if kind == "model":
    build, error, _ = t.MODELS[case]
    path = t.planted_index("case.edgevec", build())
elif kind == "tokenizer":
    build, error, _ = t.TOKENIZERS[case]
    path = t.planted_index("case.edgevec", t.benign(), tok=build())
else:
    value, error, _ = t.CONFIGS[case]
    path = t.planted_index("case.edgevec", t.benign(), cfg=t.config_bytes(value))
start = time.perf_counter()
try:
    t.text_query(path)
    got = "no error"
except edgevec.EdgevecError as exc:
    got = type(exc).__name__
seconds = time.perf_counter() - start
os.write(1, (json.dumps({"case": case, "want": error.__name__, "got": got,
                         "seconds": seconds, "mb": (rss() - before) / 1e6}) + "\n").encode())
"""


def _cases():
    sys.path.insert(0, TESTS)
    import test_hostile_models as t
    return ([("model", c) for c in sorted(t.MODELS)]
            + [("tokenizer", c) for c in sorted(t.TOKENIZERS)]
            + [("config", c) for c in sorted(t.CONFIGS)])


def test_hostile_models_end_fast_and_small(tmp_path):
    rows = []
    for n, (kind, case) in enumerate(_cases()):
        work = tmp_path / f"case{n}"
        work.mkdir()
        (work / "secret.env").write_bytes(b"CANARY-SECRET-0123456789abcdef!!")
        env = dict(os.environ, EDGEVEC_MODELS_DIR=str(work / "cache"))
        out = subprocess.run([sys.executable, "-c", CHILD, TESTS, str(work), kind, case],
                             capture_output=True, text=True, env=env, timeout=120)
        line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
        if not line.startswith("{"):
            pytest.fail(f"{case}: child failed: {out.stderr[-800:]}")
        rec = json.loads(line)
        rec["kind"] = kind
        rows.append(rec)
    print()
    print(f"edgevec hardware: {summary()}")
    print(f"{'kind':<10} {'case':<44} {'error':<14} {'s':>7} {'MB':>7}")
    for r in rows:
        print(f"{r['kind']:<10} {r['case'][:44]:<44} {r['got']:<14} {r['seconds']:7.3f} "
              f"{r['mb']:7.1f}")
    print(f"slowest {max(r['seconds'] for r in rows):.3f} s, largest "
          f"{max(r['mb'] for r in rows):.1f} MB over the baseline")
    for r in rows:
        assert r["got"] == r["want"], r
        assert r["mb"] < 100, r
