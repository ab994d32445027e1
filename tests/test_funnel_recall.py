"""Funnel quality: recall@10 of binary -> int8 against exact float32, and the choice of m.

Data: synthetic 384-d vectors with the structure of sentence embeddings (a low-rank
signal in 48 latent directions plus isotropic noise, L2-normalised), seeded. Once the
embedder lands, the same measurement runs on a real corpus (see bench/ and the README).
"""

from __future__ import annotations

import numpy as np
import pytest

from edgevec import codecs, search


def embedding_like(n: int, dim: int = 384, rank: int = 48, noise: float = 0.35,
                   seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(rank, dim)).astype(np.float32)
    z = rng.normal(size=(n, rank)).astype(np.float32) * np.linspace(2.0, 0.3, rank,
                                                                     dtype=np.float32)
    x = z @ basis / np.sqrt(rank) + noise * rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data():
    return embedding_like(20_000)


def test_choose_m_reaches_the_targets_and_is_monotone(data, capsys):
    m95, rec95 = search.choose_m(data, k=10, target=0.95, sample=100)
    m99, rec99 = search.choose_m(data, k=10, target=0.99, sample=100)
    with capsys.disabled():
        print(f"\nfunnel recall@10 vs exact float32, 20k x 384-d synthetic: m for >=0.95: "
              f"{m95}, m for >=0.99: {m99}; recall by m: "
              + ", ".join(f"{m}: {r:.3f}" for m, r in rec99.items()))
    assert m95 is not None and m99 is not None and m95 <= m99
    assert rec95[m95] >= 0.95 and rec99[m99] >= 0.99
    ms = sorted(rec99)
    assert all(rec99[a] <= rec99[b] + 0.02 for a, b in zip(ms, ms[1:]))  # more m, more recall


def test_funnel_with_f16_rescoring_is_exact_enough(data):
    cal = codecs.calibrate_int8(data)
    seg = search.Segment(codecs.sign_bits(data), codecs.quantize_int8(data, cal),
                         data.astype(np.float16))
    rng = np.random.default_rng(3)
    found, truth = [], []
    for r in rng.choice(len(data), 50, replace=False):
        q = data[r]
        s, rows = search.funnel_search([seg], cal, q, 10, m=20)
        found.append(rows)
        truth.append(search.best_k(data @ q, np.arange(len(data)), 10)[1])
        np.testing.assert_allclose(s, (data[rows].astype(np.float16).astype(np.float32) @ q),
                                   rtol=1e-5, atol=1e-6)
    assert search.recall_at_k(found, truth) >= 0.97


def test_funnel_over_segments_equals_one_segment(data):
    """Split rows into segments (as appends do): same results as one segment."""
    cal = codecs.calibrate_int8(data)
    binary, int8 = codecs.sign_bits(data), codecs.quantize_int8(data, cal)
    one = [search.Segment(binary, int8, None)]
    cuts = [0, 7000, 7001, 15000, len(data)]
    many = [search.Segment(binary[a:b], int8[a:b], None, row_start=a)
            for a, b in zip(cuts, cuts[1:])]
    q = data[42]
    # with enough candidates both see the same int8 top-k
    s1, r1 = search.funnel_search(one, cal, q, 10, m=200, rescore_f16=False)
    s2, r2 = search.funnel_search(many, cal, q, 10, m=200, rescore_f16=False)
    np.testing.assert_array_equal(r1, r2)
    np.testing.assert_allclose(s1, s2)


def test_funnel_respects_masks(data):
    cal = codecs.calibrate_int8(data)
    allow = np.zeros(len(data), bool)
    allow[::1000] = True  # 20 rows pass
    seg = search.Segment(codecs.sign_bits(data), codecs.quantize_int8(data, cal), None,
                         allow=allow)
    s, r = search.funnel_search([seg], cal, data[5], 10, m=1, rescore_f16=False)
    assert len(r) == 10 and all(row % 1000 == 0 for row in r)


def test_one_default_depth_and_what_a_calibration_stores():
    """An index never measured searches with DEFAULT_M; a calibration stores the smallest
    m that reached its target, else the deepest it measured (the two fallbacks were
    written out separately in add() and calibrate())."""
    assert search.DEFAULT_M == 10
    assert search.depth_to_store(12) == 12
    assert search.depth_to_store(None) == max(search.DEFAULT_M_CANDIDATES)
    assert search.depth_to_store(None, (1, 2, 7)) == 7
