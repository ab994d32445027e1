"""Every kernel against its NumPy reference, on odd sizes and edge cases."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import edgevec

from edgevec import codecs, search, validate
from edgevec.errors import DimensionMismatch, InvalidInput
from edgevec.kernels import reference as ref

DIMS = [8, 64, 72, 1000]
NS = [0, 1, 7, 4097]


def _codes(rng, n, dim, dup=True):
    x = rng.normal(size=(n, dim)).astype(np.float32)
    if dup and n >= 7:
        x[3] = x[1]          # duplicate rows tie: lower row first
        x[5] = 0             # an all-zero row: all bits 0, int8 codes at the offset
    return x


@pytest.fixture(autouse=True)
def numba_scans(monkeypatch):
    """These tests are about the Numba kernels: no NumPy scans unless a test asks (see
    search.ScanEngine, which would otherwise answer a new process's first queries)."""
    monkeypatch.setattr(search.ENGINE, "mode", "numba")


def _memmap(tmp_path, a):
    path = tmp_path / f"a{a.dtype}{a.shape}.bin"
    a.tofile(path)
    return np.memmap(path, dtype=a.dtype, mode="r", shape=a.shape)


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("n", NS)
@pytest.mark.parametrize("threads, engine", [(1, "numba"), (2, "numba"), (1, "numpy")])
def test_hamming_topk_matches_reference(rng, tmp_path, dim, n, threads, engine,
                                        monkeypatch):
    """The Numba kernel and the NumPy scan a new process starts with (ScanEngine) both
    give the reference's rows in the reference's order."""
    monkeypatch.setattr(search.ENGINE, "mode", engine)
    x = _codes(rng, n, dim)
    codes = codecs.sign_bits(x)
    q = codecs.sign_bits(rng.normal(size=(1, dim)).astype(np.float32))[0]
    for k in (1, 5, n + 3):
        d, r = search.hamming_topk(codes, q, k, threads=threads)
        rd, rr = ref.hamming_topk(codes, q, k)
        np.testing.assert_array_equal(d, rd)
        np.testing.assert_array_equal(r, rr)
    if n:
        mm = _memmap(tmp_path, codes)
        allow = rng.random(n) < 0.5
        d, r = search.hamming_topk(mm, q, 10, allow=allow, threads=threads)
        rd, rr = ref.hamming_topk(codes, q, 10, allow)
        np.testing.assert_array_equal(r, rr)
        np.testing.assert_array_equal(d, rd)


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("n", NS)
def test_hamming_batch_matches_reference(rng, dim, n):
    codes = codecs.sign_bits(_codes(rng, n, dim))
    qs = codecs.sign_bits(rng.normal(size=(5, dim)).astype(np.float32))
    allow = (np.arange(n) % 3 != 0) if n else None
    _batch_matches_reference(codes, qs, (1, 10, n + 2), allow)


def _batch_matches_reference(codes, qs, ks, allow):
    for k in ks:
        for threads in (1, 2):
            d, r = search.hamming_topk_batch(codes, qs, k, allow=allow, threads=threads)
            for i in range(len(qs)):
                rd, rr = ref.hamming_topk(codes, qs[i], k, allow)
                np.testing.assert_array_equal(r[i], rr)
                np.testing.assert_array_equal(d[i], rd)


def test_batch_selection_is_exact_for_deep_k_with_many_ties(rng):
    """The batch kernel keeps a 2k buffer per query and a quickselect compacts it to the
    best k whenever it fills: with a deep k (the funnel's k*m), rows in few distinct
    codes (ties everywhere) and a mask, it must return what the reference does, in order
    (distance, then row), for any thread count."""
    base = codecs.sign_bits(rng.normal(size=(40, 128)).astype(np.float32))
    codes = base[rng.integers(0, 40, size=6000)]
    qs = codecs.sign_bits(rng.normal(size=(7, 128)).astype(np.float32))
    _batch_matches_reference(codes, qs, (2, 37, 300, 1000), rng.random(6000) < 0.8)


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_hamming_all_rows_masked_and_k_rows_returned_when_k_pass(rng, engine, monkeypatch):
    monkeypatch.setattr(search.ENGINE, "mode", engine)
    codes = codecs.sign_bits(_codes(rng, 500, 64))
    q = codes[0].copy()
    d, r = search.hamming_topk(codes, q, 5, allow=np.zeros(500, bool))
    assert len(d) == 0 and len(r) == 0
    allow = np.zeros(500, bool)
    allow[[7, 99, 250, 400, 499]] = True  # exactly k rows pass a very selective filter
    _, r = search.hamming_topk(codes, q, 5, allow=allow)
    assert sorted(r.tolist()) == [7, 99, 250, 400, 499]
    d, r = search.hamming_topk_batch(codes, codes[:3], 5, allow=allow)
    assert r.shape == (3, 5) and all(sorted(row) == [7, 99, 250, 400, 499] for row in r.tolist())


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_hamming_max_distance_rows_are_found(rng, engine, monkeypatch):
    monkeypatch.setattr(search.ENGINE, "mode", engine)
    """Rows at the largest possible distance (every bit differs) are still results."""
    codes = np.zeros((4, 1), np.uint64)
    q = np.array([np.iinfo(np.uint64).max], np.uint64)
    d, r = search.hamming_topk(codes, q, 10)
    assert d.tolist() == [64] * 4 and r.tolist() == [0, 1, 2, 3]


def _quant(rng, n, dim):
    x = _codes(rng, n, dim)
    cal = codecs.calibrate_int8(x if n else rng.normal(size=(3, dim)).astype(np.float32))
    return x, codecs.quantize_int8(x, cal), cal


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("n", NS)
@pytest.mark.parametrize("threads", [1, 2])
def test_dot_i8_topk_and_rescore_match_reference(rng, tmp_path, dim, n, threads, monkeypatch):
    x, codes, cal = _quant(rng, n, dim)
    q = rng.normal(size=dim).astype(np.float32)
    qq = search.quantize_query(q, cal)
    for k in (1, 5, n + 3):
        s, r = search.dot_i8_topk(codes, qq, k, threads=threads)
        rs, rr = ref.dot_i8_topk(codes, qq.q, k)
        np.testing.assert_array_equal(r, rr)
        np.testing.assert_allclose(s, qq.bias + qq.scale * rs)
    if n:
        mm = _memmap(tmp_path, codes)
        rows = rng.integers(0, n, size=50)
        for engine in ("numba", "numpy"):  # NumPy rescores before Numba is loaded
            monkeypatch.setattr(search, "ENGINE", search.ScanEngine())
            monkeypatch.setattr(search.ENGINE, "mode", engine)
            got = search.dot_i8_rescore(mm, qq, rows)
            np.testing.assert_allclose(got, qq.bias + qq.scale * ref.dot_i8(codes[rows], qq.q))
        allow = rng.random(n) < 0.3
        s, r = search.dot_i8_topk(mm, qq, 10, allow=allow, threads=threads)
        rs, rr = ref.dot_i8_topk(codes, qq.q, 10, allow)
        np.testing.assert_array_equal(r, rr)


def test_dot_i8_no_overflow_at_extremes():
    """Largest codes and largest query in the widest dimension: int32 must not wrap."""
    d = 4096
    codes = np.full((3, d), 127, np.int8)
    codes[1] = -127
    cal = np.stack([np.zeros(d), np.ones(d)]).astype(np.float32)
    qq = search.quantize_query(np.ones(d, np.float32), cal)
    got = search.dot_i8_rescore(codes, qq, np.arange(3))
    np.testing.assert_allclose(got, [127 * d, -127 * d, 127 * d], rtol=1e-6)
    s, r = search.dot_i8_topk(codes, qq, 3)
    assert r.tolist() == [0, 2, 1]


def test_int8_scores_approximate_float_dot(rng):
    x = rng.normal(size=(2000, 384)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    cal = codecs.calibrate_int8(x)
    codes = codecs.quantize_int8(x, cal)
    q = x[17]
    qq = search.quantize_query(q, cal)
    approx = search.dot_i8_rescore(codes, qq, np.arange(2000))
    assert np.abs(approx - x @ q).max() < 0.02


def test_results_identical_across_thread_counts(rng):
    codes = codecs.sign_bits(_codes(rng, 20000, 256))
    q = codes[11].copy()
    one = search.hamming_topk(codes, q, 300, threads=1)
    two = search.hamming_topk(codes, q, 300, threads=2)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("call, error, words", [
    (lambda c, q: search.hamming_topk(c.astype(np.int64), q, 3), InvalidInput, "dtype uint64"),
    (lambda c, q: search.hamming_topk(c, q[:1], 3), DimensionMismatch, "words"),
    (lambda c, q: search.hamming_topk(c[:, ::2], q[::2].copy(), 3), InvalidInput,
     "C-contiguous"),
    (lambda c, q: search.hamming_topk(c, q, 0), InvalidInput, "positive"),
    (lambda c, q: search.hamming_topk(c, q, 2.5), InvalidInput, "positive"),
    (lambda c, q: search.hamming_topk(c, q, 3, allow=np.ones(5, bool)), InvalidInput,
     "5 entries"),
    (lambda c, q: search.hamming_topk(c, q, 3, allow=np.ones(10, np.float32)), InvalidInput,
     "bool or uint8"),
    (lambda c, q: search.hamming_topk(c, q, 3, threads=0), InvalidInput, "threads"),
])
def test_bad_input_rejected_before_any_kernel(rng, call, error, words):
    codes = codecs.sign_bits(rng.normal(size=(10, 128)).astype(np.float32))
    with pytest.raises(error, match=words):
        call(codes, codes[0].copy())


def test_bad_queries_rejected(rng):
    with pytest.raises(InvalidInput, match="NaN"):
        validate.check_vectors([np.nan] * 8, 8)
    with pytest.raises(DimensionMismatch):
        validate.check_vectors(np.ones(9), 8)
    codes = np.zeros((5, 8), np.int8)
    cal = np.stack([np.zeros(8), np.ones(8)]).astype(np.float32)
    qq = search.quantize_query(np.ones(8, np.float32), cal)
    with pytest.raises(InvalidInput, match="candidate rows"):
        search.dot_i8_rescore(codes, qq, np.array([0, 5]))
    with pytest.raises(InvalidInput, match="dtype int8"):
        search.dot_i8_rescore(codes.astype(np.int16), qq, np.array([0]))


def test_kernels_run_without_jit(tmp_path):
    """NUMBA_DISABLE_JIT=1: the same kernels as plain Python (small sizes)."""
    code = (
        "import numpy as np\n"
        "from edgevec import codecs, search\n"
        "from edgevec.kernels import reference as ref\n"
        "rng = np.random.default_rng(0)\n"
        "x = rng.normal(size=(37, 72)).astype(np.float32)\n"
        "c = codecs.sign_bits(x); q = c[3].copy()\n"
        "d, r = search.hamming_topk(c, q, 5); rd, rr = ref.hamming_topk(c, q, 5)\n"
        "assert (r == rr).all() and (d == rd).all()\n"
        "d, r = search.hamming_topk_batch(c, c[:2], 4)\n"
        "assert (r[1] == ref.hamming_topk(c, c[1], 4)[1]).all()\n"
        "cal = codecs.calibrate_int8(x); codes = codecs.quantize_int8(x, cal)\n"
        "qq = search.quantize_query(x[0], cal)\n"
        "s, r = search.dot_i8_topk(codes, qq, 6)\n"
        "assert (r == ref.dot_i8_topk(codes, qq.q, 6)[1]).all()\n"
        "from edgevec.kernels.bm25 import find_terms\n"
        "from edgevec.storage.strings import encode_table\n"
        "off, data = encode_table(['a', 'ab', 'b'])\n"
        "out = np.empty(3, np.int64)\n"
        "keys = np.frombuffer(b'abzb', np.uint8)\n"
        "assert find_terms(off, data, keys, np.array([0, 2, 3, 4]), out) == 0\n"
        "assert out.tolist() == [1, -1, 2]\n"
        "print('ok')\n")
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", EDGEVEC_SCAN="numba")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def _loops(asm: str) -> list[list[str]]:
    """Bodies of the loops of an x86 listing: from a label to a later jump back to it."""
    lines = asm.splitlines()
    where, loops = {}, []
    for i, line in enumerate(lines):
        label = re.match(r"^(\.L\w+):", line)
        if label:
            where[label.group(1)] = i
        jump = re.match(r"^\s+j\w+\s+(\.L\w+)", line)
        if jump and where.get(jump.group(1), i) < i:
            loops.append(lines[where[jump.group(1)]:i + 1])
    return loops


def popcount_form(asm: str) -> tuple[str, int]:
    """How the hot loop counts bits: ("vpopcntq" | "vpshufb lookup" | "popcnt" | "none", how
    many). The hot loop is the loop with the most 64-bit or vector XORs (a Hamming scan
    XORs each code word with the query); a remainder loop has few, so a popcnt there
    cannot pass for the main loop's."""
    def xors(body):
        return sum(bool(re.match(r"\s+(vpxor\w*|xorq)\s", x)) for x in body)
    hot = max(_loops(asm), key=xors, default=[])
    text = "\n".join(hot)
    for form, pattern in (("vpopcntq", r"\bvpopcnt[qd]\b"), ("vpshufb lookup", r"\bvpshufb\b"),
                          ("popcnt", r"\bpopcnt[qlw]?\b")):
        count = len(re.findall(pattern, text))
        if count:
            return form, count
    return "none", 0


@pytest.mark.skipif(__import__("platform").machine() not in ("x86_64", "AMD64"),
                    reason="checks x86 instructions")
@pytest.mark.parametrize("dim", [256, 384])
def test_hamming_hot_loops_use_hardware_popcount(tmp_path, dim):
    """The popcount of each kernel's hot loop must be popcnt, AVX-512 vpopcntq or the AVX2
    vpshufb nibble lookup, never bit arithmetic; the test says which it found for the CPU
    Numba compiles for. Inspecting assembly needs a fresh compile (an empty cache dir)."""
    code = (
        "import sys, numpy as np, numba\n"
        "import llvmlite.binding as ll\n"
        "from edgevec import codecs, search\n"
        "from edgevec.kernels import hamming as H\n"
        f"c = codecs.sign_bits(np.random.default_rng(0).normal(size=(64, {dim}))"
        ".astype(np.float32))\n"
        "search.hamming_topk(c, c[0].copy(), 5)\n"
        "search.hamming_topk_batch(c, c[:2].copy(), 5)\n"
        "for fn in (H.hamming_topk, H.hamming_topk_batch):\n"
        "    open(sys.argv[1] + '/' + fn.__name__ + '.s', 'w').write("
        "'\\n'.join(fn.inspect_asm().values()))\n"
        "feats = numba.config.CPU_FEATURES or ll.get_host_cpu_features().flatten()\n"
        "print(numba.config.CPU_NAME or ll.get_host_cpu_name(), feats)\n")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), EDGEVEC_SCAN="numba")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    cpu, features = out.stdout.split()
    has = {f[1:] for f in features.split(",") if f.startswith("+")}
    found = {name: popcount_form((tmp_path / f"{name}.s").read_text())
             for name in ("hamming_topk", "hamming_topk_batch")}
    report = (f"{cpu} (avx2={'avx2' in has}, avx512vpopcntdq={'avx512vpopcntdq' in has}), "
              f"{dim} bits: " + "; ".join(f"{k}: {v[0]} x{v[1]}" for k, v in found.items()))
    print("\n" + report)
    assert all(form != "none" for form, _ in found.values()), report
    batch = found["hamming_topk_batch"][0]
    if "avx512vpopcntdq" in has:
        assert batch == "vpopcntq", report
    elif "avx2" in has:
        assert batch == "vpshufb lookup", report


def test_a_new_process_rents_numpy_then_buys_numba(rng, monkeypatch):
    """Ski rental (search.ScanEngine): NumPy answers until it has cost what loading Numba
    costs, then Numba; scans too big for NumPy go to Numba at once; modes are obeyed."""
    engine = search.ScanEngine()
    monkeypatch.setattr(engine, "mode", "auto")
    assert engine.use_numpy(1000) and not engine.numba_loaded
    assert not engine.use_numpy(engine.NUMPY_MAX_WORDS + 1) and engine.numba_loaded
    assert not engine.use_numpy(1000)  # once loaded, always Numba
    engine = search.ScanEngine()
    monkeypatch.setattr(engine, "mode", "auto")
    engine.numpy_seconds = engine.NUMBA_LOAD_SECONDS
    assert not engine.use_numpy(1000)
    monkeypatch.setattr(engine, "mode", "numpy")
    assert engine.use_numpy(engine.NUMPY_MAX_WORDS * 4)
    monkeypatch.setattr(engine, "mode", "fast")  # a typo in EDGEVEC_SCAN
    with pytest.raises(InvalidInput, match="EDGEVEC_SCAN must be auto, numba or numpy"):
        engine.use_numpy(1)
    # and the real one accumulates the NumPy time it spends
    monkeypatch.setattr(search, "ENGINE", search.ScanEngine())
    monkeypatch.setattr(search.ENGINE, "mode", "auto")
    codes = codecs.sign_bits(rng.normal(size=(500, 64)).astype(np.float32))
    search.hamming_topk(codes, codes[0].copy(), 3)
    assert search.ENGINE.numpy_seconds > 0 and not search.ENGINE.numba_loaded


# --- the table scan over transform codes (issue 14) -------------------------------------

def _transform_case(seed: int, n: int, d: int = 40, budget: int = 90):
    from edgevec import codecs
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(max(n, 300), d)) * np.geomspace(3, 0.05, d)).astype(np.float32)
    code = codecs.fit_transform_code(x[:300], budget)
    idx = codecs.transform_encode(x[:n], code)
    q = rng.normal(size=(3, d)).astype(np.float32)
    lut, offset = codecs.transform_lut(q, code)
    return codecs.transform_pack(idx, code), lut, offset, idx, code, q


@pytest.mark.parametrize("n", [1, 7, 1000, 4099])
def test_lut_scan_matches_the_reference_bit_for_bit(n):
    from edgevec import search
    from edgevec.kernels import reference as ref
    codes, lut, _, _, _, _ = _transform_case(n, n)
    rng = np.random.default_rng(n)
    for allow in (None, rng.random(n) < 0.3):
        for k in (1, 10, n + 5):
            for threads in (1, 2):
                got = search.lut_topk(codecs.transform_blocks(codes, 64), n, lut[0], k,
                                      allow=allow, threads=threads)
                want = ref.lut_topk(codes, lut[0], k, allow)
                np.testing.assert_array_equal(got[0].view(np.int32), want[0].view(np.int32))
                np.testing.assert_array_equal(got[1], want[1])


def test_lut_sums_plus_offset_are_the_decoded_dot_products():
    from edgevec import codecs
    from edgevec.kernels import reference as ref
    codes, lut, offset, idx, code, q = _transform_case(3, 500)
    assert codes.shape[1] == sum(-(-c // 8) for c in codecs.transform_planes(code)[1])
    decoded = code["mean"] + codecs.transform_decode(idx, code) @ code["rotation"]
    for i in range(len(q)):
        est = ref.lut_scores(codes, lut[i]).astype(np.float64) + offset[i]
        np.testing.assert_allclose(est, decoded @ q[i], rtol=1e-4, atol=1e-4)
    assert (lut >= 0).all()


def test_lut_scan_refuses_bad_tables():
    from edgevec import search
    codes, lut, _, _, _, _ = _transform_case(4, 50)
    blocks = codecs.transform_blocks(codes, 16)
    with pytest.raises(edgevec.DimensionMismatch, match="256"):
        search.lut_topk(blocks, 50, lut[0][:, :255], 3)
    bad = lut[0].copy()
    bad[0, 0] = np.nan
    with pytest.raises(edgevec.InvalidInput, match="finite"):
        search.lut_topk(blocks, 50, bad, 3)
    for n in (48, 65, "50"):
        with pytest.raises(edgevec.InvalidInput, match="cannot hold"):
            search.lut_topk(blocks, n, lut[0], 3)


# --- float8 rescoring (issue 14): integer tables, exact sums ---------------------------

@pytest.mark.parametrize("kind", ["e4m3", "e5m2"])
def test_float8_rescoring_is_exact_and_the_same_in_both_engines(kind, monkeypatch):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(300, 37)).astype(np.float32)  # odd dimension
    scale = (np.abs(x).max(axis=0) / codecs.float8_max(kind)).astype(np.float32)
    codes = codecs.quantize_float8(x, scale, kind)
    q = rng.normal(size=(4, 37)).astype(np.float32)
    rows = rng.integers(0, 300, size=(4, 25))
    decoded = codecs.dequantize_float8(codes, scale, kind).astype(np.float64)
    want = np.einsum("qmd,qd->qm", decoded[rows], q.astype(np.float64))
    results = []
    for mode in ("numba", "numpy"):
        monkeypatch.setattr(search.ENGINE, "mode", mode)
        monkeypatch.setattr(search.ENGINE, "numba_loaded", False)
        results.append(search.dot_f8_rescore(codes, kind, scale, q, rows))
        one = search.dot_f8_rescore(codes, kind, scale, q[1], rows[1])
        np.testing.assert_array_equal(one, results[-1][1])
    np.testing.assert_array_equal(results[0], results[1])  # exact integer sums, both ways
    # the only rounding is the query's (20 bits): far below float8's own
    np.testing.assert_allclose(results[0], want, atol=1e-4 * np.abs(want).max())


def test_float8_rescoring_refuses_bad_input():
    codes = np.zeros((5, 8), np.uint8)
    scale = np.ones(8, np.float32)
    with pytest.raises(InvalidInput, match="kind"):
        search.dot_f8_rescore(codes, "e3m4", scale, np.ones(8), np.array([0]))
    with pytest.raises(DimensionMismatch):
        search.dot_f8_rescore(codes, "e4m3", scale, np.ones(7), np.array([0]))
    with pytest.raises(InvalidInput, match=r"\[0, 5\)"):
        search.dot_f8_rescore(codes, "e4m3", scale, np.ones(8), np.array([5]))
    with pytest.raises(InvalidInput, match="finite|NaN"):
        search.dot_f8_rescore(codes, "e4m3", scale, np.full(8, np.nan), np.array([0]))
    with pytest.raises(InvalidInput, match="do not fit"):
        search.dot_f8_rescore(codes, "e4m3", scale, np.ones((2, 8)), np.array([0, 1]))


# --- the scan over multi-bit residual sign planes (issue 14) ------------------------------

@pytest.mark.parametrize("dim, n", [(8, 1), (72, 7), (37, 1000), (384, 4099)])
def test_plane_scan_matches_the_reference_bit_for_bit(dim, n):
    rng = np.random.default_rng(dim + n)
    x = _codes(rng, n, dim)
    q = rng.normal(size=(5, dim)).astype(np.float32)
    q[4] = x[0]  # a query that is a row
    for b, qp in ((1, 1), (2, 2), (3, 4), (4, 1)):
        codes, scales = codecs.residual_planes(x, b)
        qcodes, qscales = codecs.residual_planes(q, qp)
        for allow in (None, rng.random(n) < 0.3):
            for k in (1, 10, n + 5):
                for threads in (1, 2):
                    got = search.planes_topk(codes, scales, q, dim, k, query_planes=qp,
                                             allow=allow, threads=threads)
                    want = ref.planes_topk(codes, scales, qcodes,
                                           qscales.astype(np.float64), dim, k, allow)
                    np.testing.assert_array_equal(got[0].view(np.int32),
                                                  want[0].view(np.int32))
                    np.testing.assert_array_equal(got[1], want[1])
                    one = search.planes_topk(codes, scales, q[2], dim, k, query_planes=qp,
                                             allow=allow)
                    np.testing.assert_array_equal(one[1], got[1][2])


def test_plane_scores_are_the_inner_products_of_the_decoded_codes():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 70)).astype(np.float32)
    q = rng.normal(size=(3, 70)).astype(np.float32)
    codes, scales = codecs.residual_planes(x, 3)
    qcodes, qscales = codecs.residual_planes(q, 2)
    want = codecs.residual_decode(qcodes, qscales, 70) @ codecs.residual_decode(
        codes, scales, 70).T
    got = ref.planes_scores(codes, scales, qcodes, qscales.astype(np.float64), 70)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    # each plane brings the scores closer to the float inner products
    err = [np.abs(search.planes_topk(codes, scales, q, 70, 200, query_planes=qp)[0]
                  - np.sort(q @ codecs.residual_decode(codes, scales, 70).T)[:, ::-1]).mean()
           for qp in (1, 4)]
    assert err[1] < err[0] / 2


def test_plane_scan_negative_scores_and_ties_order_like_floats():
    x = np.array([[1, 1], [-1, -1], [1, -1], [-1, -1]], np.float32)
    codes, scales = codecs.residual_planes(x, 1)
    s, rows = search.planes_topk(codes, scales, np.array([1, 1], np.float32), 2, 4,
                                 query_planes=1)
    assert rows.tolist() == [0, 2, 1, 3] and s.tolist() == [2.0, 0.0, -2.0, -2.0]


def test_plane_scan_refuses_bad_input():
    codes, scales = codecs.residual_planes(np.ones((5, 70), np.float32), 2)
    q = np.ones(70, np.float32)
    with pytest.raises(DimensionMismatch):
        search.planes_topk(codes, scales, q, 64, 3)  # 70 dims are 2 words, 64 are 1
    with pytest.raises(DimensionMismatch):
        search.planes_topk(codes, scales, np.ones(69, np.float32), 70, 3)
    bad = scales.copy()
    bad[2, 1] = np.nan
    with pytest.raises(InvalidInput, match="NaN"):
        search.planes_topk(codes, bad, q, 70, 3)
    with pytest.raises(InvalidInput, match=r"\[5, 2\]"):
        search.planes_topk(codes, scales[:, :1].copy(), q, 70, 3)
    with pytest.raises(InvalidInput, match="query_planes"):
        search.planes_topk(codes, scales, q, 70, 3, query_planes=9)
    with pytest.raises(InvalidInput, match="NaN|finite"):
        search.planes_topk(codes, scales, np.full(70, np.nan, np.float32), 70, 3)
    with pytest.raises(InvalidInput, match="3-dimensional"):
        search.planes_topk(codes[:, 0].copy(), scales, q, 70, 3)
