"""Codecs: bit order, int8 calibration, clipping, round trips (hypothesis)."""

from __future__ import annotations

import numpy as np
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
