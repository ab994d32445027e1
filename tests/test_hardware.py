"""edgevec.hardware() and `edgevec info --hardware`: what this CPU offers, stated plainly."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import edgevec
from edgevec import cli
from edgevec.cpu import FEATURES, popcount_form, summary


def test_hardware_reports_features_numba_target_and_exact_variants():
    info = edgevec.hardware()
    assert set(info["features"]) == set(FEATURES)
    assert all(isinstance(v, bool) for v in info["features"].values())
    assert info["numba"]["target"] and info["numba"]["version"]
    assert info["onnxruntime"]["int8_products_exact_7bit_weights"] is True
    assert set(info["embedding_variants"]) == {"int8", "fp32", "dyn8"}
    assert "exact here" in info["embedding_variants"]["dyn8"]
    json.dumps(info)  # serialisable as it is
    line = summary(info)
    assert info["numba"]["target"] in line and "dyn8 exact" in line
    assert "onnxruntime" not in edgevec.hardware(probe_onnxruntime=False)


def test_popcount_form_follows_the_target_features():
    assert popcount_form({"avx512vpopcntdq", "avx2", "popcnt"}).startswith("vpopcntq")
    assert popcount_form({"avx2", "popcnt"}).startswith("vpshufb")
    assert popcount_form({"avx2", "popcnt"}, vector=False) == "popcnt"
    assert popcount_form(set()).startswith("bit arithmetic")


def test_numba_cpu_features_override_is_reported():
    """NUMBA_CPU_NAME alone keeps the host's instruction set; the report says which
    feature string Numba compiles with."""
    code = "import edgevec, json; print(json.dumps(edgevec.hardware(probe_onnxruntime=False)))"
    env = {"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": "+avx2,+popcnt,+avx,+fma"}
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, **env),
                         capture_output=True, text=True, check=True)
    nb = json.loads(out.stdout)["numba"]
    assert nb["target"] == "haswell" and nb["target_features"] == "NUMBA_CPU_FEATURES"
    assert nb["popcount_batch"].startswith("vpshufb")


def test_cli_info_hardware(capsys):
    assert cli.main(["info", "--hardware"]) == 0
    out = capsys.readouterr().out
    assert "avx2" in out and "variant dyn8" in out and "onnxruntime" in out
    assert cli.main(["info", "--hardware", "--json"]) == 0
    assert "features" in json.loads(capsys.readouterr().out)
    assert cli.main(["info"]) == 2  # neither a file nor --hardware
