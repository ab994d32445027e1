"""Codecs: bit order, int8 calibration, clipping, round trips (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edgevec import codecs


def test_sign_bit_order_is_fixed():
    x = np.zeros((1, 130), np.float32)
    x[0, [0, 3, 63, 64, 129]] = 1.0
    x[0, 5] = -1.0  # negative -> 0
    words = codecs.sign_bits(x)
    assert words.dtype == np.dtype("<u8") and words.shape == (1, 3)
    assert int(words[0, 0]) == (1 << 0) | (1 << 3) | (1 << 63)
    assert int(words[0, 1]) == 1 << 0
    assert int(words[0, 2]) == 1 << 1  # dim 129 = bit 1 of word 2; bits past 130 stay 0
    assert codecs.sign_bits(np.zeros((0, 7), np.float32)).shape == (0, 1)


@settings(max_examples=200, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 20), st.integers(1, 130)),
              elements=st.floats(-1e4, 1e4, width=32)))
def test_sign_bits_match_a_plain_definition(x):
    words = codecs.sign_bits(x)
    n, d = x.shape
    for i in range(n):
        for j in range(d):
            assert bool(int(words[i, j // 64]) >> (j % 64) & 1) == bool(x[i, j] > 0)
        for j in range(d, words.shape[1] * 64):
            assert not int(words[i, j // 64]) >> (j % 64) & 1


@settings(max_examples=200, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 400), st.integers(1, 40)),
              elements=st.floats(-100, 100, width=32)))
def test_int8_round_trip_error_is_half_a_step_inside_the_range(x):
    cal = codecs.calibrate_int8(x)
    assert cal.dtype == np.float32 and cal.shape == (2, x.shape[1]) and (cal[1] > 0).all()
    q = codecs.quantize_int8(x, cal)
    assert q.dtype == np.int8 and q.min() >= -127
    back = codecs.dequantize_int8(q, cal)
    lo, hi = cal[0] - 127 * cal[1], cal[0] + 127 * cal[1]
    inside = (x >= lo) & (x <= hi)
    err = np.abs(back - x)
    tol = cal[1] * 0.5 * (1 + 1e-4) + np.abs(x) * 1e-6
    assert np.all(err[inside] <= np.broadcast_to(tol, x.shape)[inside])
    # outside the calibrated range values clip to the nearest end, never wrap
    assert np.all(q[x > hi] == 127) and np.all(q[x < lo] == -127)


def test_clipping_never_wraps():
    cal = np.stack([np.zeros(3), np.full(3, 0.01)]).astype(np.float32)
    q = codecs.quantize_int8(np.array([[1e6, -1e6, 1.28]], np.float32), cal)
    assert q.tolist() == [[127, -127, 127]]


def test_single_vector_quantises_like_its_batch(rng):
    x = rng.normal(size=(1000, 384)).astype(np.float32)
    cal = codecs.calibrate_int8(x)
    batch = codecs.quantize_int8(x, cal)
    for i in (0, 17, 999):
        np.testing.assert_array_equal(codecs.quantize_int8(x[i:i + 1], cal), batch[i:i + 1])
        np.testing.assert_array_equal(codecs.quantize_int8(x[i], cal), batch[i])


def test_small_batches_get_one_symmetric_range(rng):
    x = rng.normal(size=(3, 16)).astype(np.float32)
    cal = codecs.calibrate_int8(x)
    assert np.all(cal[0] == 0) and np.allclose(cal[1], np.abs(x).max() / 127)
    one = codecs.calibrate_int8(np.zeros((1, 4), np.float32))
    assert np.all(one[1] > 0)  # an all-zero sample still gives a usable scale


# --- the compression ladder's reference codecs (issue 14) -------------------------------

def test_float8_tables_hold_the_standard_values():
    e4 = codecs.float8_table("e4m3")
    assert e4[0x00] == 0 and e4[0x38] == 1.0 and e4[0x7E] == 448 and np.isnan(e4[0x7F])
    assert e4[0x01] == 2.0 ** -9 and e4[0xB8] == -1.0  # smallest subnormal; the sign bit
    e5 = codecs.float8_table("e5m2")
    assert e5[0x3C] == 1.0 and e5[0x7B] == 57344 and np.isinf(e5[0x7C]) and np.isnan(e5[0x7D])
    assert codecs.float8_max("e4m3") == 448 and codecs.float8_max("e5m2") == 57344
    for kind, table in (("e4m3", e4), ("e5m2", e5)):  # the integer tables are exact
        ints, shift = codecs.float8_int_table(kind)
        finite = np.isfinite(table)
        np.testing.assert_array_equal(ints[finite] * 2.0 ** -shift, table[finite])
        assert (ints[~finite] == 0).all()


@pytest.mark.parametrize("kind", ["e4m3", "e5m2"])
def test_float8_quantisation_picks_the_nearest_value_and_saturates(kind):
    table = codecs.float8_table(kind)
    finite = np.unique(table[np.isfinite(table)])
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(scale=30, size=2000), [0.0, -0.0, 1e9, -1e9, 448.0]]
                       ).astype(np.float32)
    codes = codecs.quantize_float8(x[None, :], np.float32(1.0), kind)[0]
    got = table[codes]
    assert np.isfinite(got).all()
    nearest = finite[np.abs(finite[None, :] - np.clip(x, finite[0], finite[-1])[:, None]
                            ).argmin(axis=1)]
    np.testing.assert_array_equal(np.abs(got - x), np.abs(nearest - np.clip(
        x, finite[0], finite[-1])) + np.abs(np.clip(x, finite[0], finite[-1]) - x))
    scale = np.float32(0.01)
    np.testing.assert_array_equal(codecs.dequantize_float8(
        codecs.quantize_float8(x[None] * scale, scale, kind), scale, kind)[0], got * scale)


def test_residual_planes_sum_back_to_the_vector_they_code():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(50, 70)).astype(np.float32)  # 70: two words, the last one partial
    bits, scales = codecs.residual_planes(x, 3)
    assert bits.shape == (50, 3, 2) and scales.shape == (50, 3)
    assert not (bits[:, :, 1] >> np.uint64(6)).any()  # no bits past dim 70
    signs = codecs.unpack_signs(bits, 70)
    np.testing.assert_array_equal(signs[:, 0], np.where(x > 0, 1, -1))
    r = x - scales[:, :1] * signs[:, 0]
    np.testing.assert_array_equal(signs[:, 1], np.where(r > 0, 1, -1))
    np.testing.assert_allclose(scales[:, 1], np.abs(r).mean(axis=1), rtol=1e-6)
    fixed, same = codecs.residual_planes(x, 3, scales=np.array([0.5, 0.25, 0.1], "f4"))
    np.testing.assert_array_equal(same, np.tile([0.5, 0.25, 0.1], (50, 1)).astype("f4"))
    np.testing.assert_allclose(codecs.residual_decode(fixed, same, 70),
                               np.einsum("p,npd->nd", same[0], codecs.unpack_signs(fixed, 70)))


def test_pca_is_deterministic_and_keeps_the_largest_directions():
    rng = np.random.default_rng(5)
    basis = np.linalg.qr(rng.normal(size=(16, 16)))[0]
    x = (rng.normal(size=(400, 16)) * np.array([10, 6, 3, 1.5] + [0.1] * 12)) @ basis.T + 3
    mean, comp = codecs.fit_pca(x.astype(np.float32), 4)
    mean2, comp2 = codecs.fit_pca(x[::-1].astype(np.float32), 4)
    np.testing.assert_allclose(comp, comp2, atol=1e-5)
    np.testing.assert_allclose(np.abs(comp @ basis[:, :4]), np.eye(4), atol=0.05)
    proj = codecs.fit_projection(x.astype(np.float32), 4)
    y = proj.rows(x.astype(np.float32))
    assert y.shape == (400, 4) and np.allclose(proj.restore(y), x, atol=0.6)
    # a query's score on the projected rows + its offset estimates the full dot product
    q = rng.normal(size=(3, 16)).astype(np.float32)
    z, offset = proj.queries(q)
    np.testing.assert_allclose(z @ y.T + offset[:, None], q @ x.T.astype(np.float32),
                               atol=0.1 * np.abs(q @ x.T).max())


def test_prefix_projection_cuts_and_renormalises():
    x = np.array([[3, 4, 12], [0, 0, 1]], dtype=np.float32)
    cut = codecs.Projection("prefix", 2, 3, normalise=True)
    np.testing.assert_allclose(cut.rows(x[:1]), [[0.6, 0.8]])
    np.testing.assert_allclose(cut.restore(cut.rows(x[:1])), [[0.6, 0.8, 0]])
    assert cut.queries(x)[1].tolist() == [0, 0]
    assert codecs.Projection("prefix", 2, 3).rows(x).tolist() == [[3, 4], [0, 0]]


def test_gaussian_quantisers_match_the_published_tables():
    # Max (1960): Lloyd-Max levels and errors; the best uniform steps
    np.testing.assert_allclose(codecs.levels(2, "lloyd")[2:], [0.4528, 1.5104], atol=2e-4)
    np.testing.assert_allclose(codecs.levels(3, "lloyd")[4:], [0.2451, 0.7560, 1.3439, 2.1520],
                               atol=2e-4)
    np.testing.assert_allclose([codecs.distortion(b, "lloyd") for b in range(5)],
                               [1, 0.3634, 0.1175, 0.03454, 0.009497], rtol=2e-3)
    np.testing.assert_allclose(np.diff(codecs.levels(2, "uniform")), 0.9957, atol=2e-3)
    np.testing.assert_allclose(np.diff(codecs.levels(4, "uniform")), 0.3352, atol=2e-3)
    for b in range(1, codecs.MAX_BITS + 1):
        for quantizer in ("lloyd", "uniform"):
            lv = codecs.levels(b, quantizer)
            assert len(lv) == 2 ** b and np.array_equal(lv, -lv[::-1])


def test_bits_go_where_the_variance_is_and_the_code_round_trips():
    variance = np.array([16.0, 4.0, 1.0, 0.25, 0.0])
    bits = codecs.allocate_bits(variance, 8)
    assert bits.sum() == 8 and list(bits) == sorted(bits, reverse=True) and bits[-1] == 0
    assert codecs.allocate_bits(variance, 1000).tolist() == [codecs.MAX_BITS] * 5
    rng = np.random.default_rng(6)
    basis = np.linalg.qr(rng.normal(size=(24, 24)))[0]
    x = ((rng.normal(size=(3000, 24)) * np.geomspace(4, 0.05, 24)) @ basis.T).astype("f4")
    code = codecs.fit_transform_code(x[:1000], 24 * 3)
    assert code["bits"].sum() == 72 and code["rotation"].shape == (24, 24)
    err = []
    for quantizer in ("uniform", "lloyd"):
        code["quantizer"] = quantizer
        rec = codecs.transform_decode(codecs.transform_encode(x, code), code)
        exact = (x - code["mean"]) @ code["rotation"].T
        err.append(float(np.mean((rec - exact) ** 2) / np.mean(exact ** 2)))
    assert err[0] < 0.02 and err[1] < err[0] * 1.05  # 3 bits a dimension on average


def _nearest_float8_searched(x, scale, kind):
    """The first encoder: a search over the sorted positive values (the reference)."""
    table = codecs.float8_table(kind)
    positive = np.flatnonzero((table >= 0) & np.isfinite(table) & (np.arange(256) < 128))
    values = table[positive]
    order = np.argsort(values, kind="stable")
    values, positive = values[order], positive[order]
    y = np.minimum(np.abs(np.asarray(x, np.float32) / np.float32(scale)), values[-1])
    hi = np.clip(np.searchsorted(values, y), 1, len(values) - 1)
    lo = hi - 1
    code = positive[np.where(values[hi] - y < y - values[lo], hi, lo)].astype(np.uint8)
    return np.where(np.asarray(x) < 0, code | np.uint8(0x80), code).astype(np.uint8)


@pytest.mark.parametrize("kind", ["e4m3", "e5m2"])
def test_float8_encoder_equals_the_searched_nearest_value_ties_included(kind):
    table = codecs.float8_table(kind)
    finite = np.unique(np.abs(table[np.isfinite(table)]))
    mids = (finite[1:] + finite[:-1]) / 2  # exact ties: they go to the lower magnitude
    near = np.concatenate([mids, np.nextafter(mids, 0), np.nextafter(mids, np.inf), finite,
                           finite * 1.0001, [0.0, finite[-1] * 2, 1e30, 1e-30]])
    rng = np.random.default_rng(8)
    x = np.concatenate([near, -near, rng.normal(scale=10.0, size=20_000),
                        rng.normal(scale=1e-3, size=5_000)]).astype(np.float32)
    for scale in (1.0, 0.5, 3.0):
        got = codecs.quantize_float8(x[None, :], np.float32(scale), kind)[0]
        np.testing.assert_array_equal(got, _nearest_float8_searched(x, scale, kind))
        assert np.isfinite(table[got]).all()
    got = codecs.quantize_float8(mids[None, :], np.float32(1.0), kind)[0]
    np.testing.assert_array_equal(table[got], finite[:-1])  # each tie: the lower value
