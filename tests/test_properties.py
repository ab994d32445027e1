"""Property tests: any rows round-trip; any sequence of add/delete/compact/reopen matches a
plain in-memory model."""

from __future__ import annotations

import os
import tempfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import edgevec
from edgevec import codecs

SETTINGS = dict(deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1),
                   st.floats(allow_nan=False, allow_infinity=False), text)
json_value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(text, inner, max_size=3), max_leaves=6)
field = st.sampled_from(["lang", "year", "score", "flag", "tags", "ü"])


@st.composite
def batches(draw, dim: int):
    n = draw(st.integers(1, 12))
    ids = draw(st.lists(text, min_size=n, max_size=n, unique=True))
    # values come from a drawn seed and scale (drawing thousands of floats one by one is
    # slow and shrinks poorly); the scales reach float32's tiny and huge ends
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([1e-30, 1e-3, 1.0, 1e3, 1e30]))
    x = (rng.normal(size=(n, dim)) * scale).astype(np.float32)
    if draw(st.booleans()):
        x[:, rng.random(dim) < 0.3] = 0  # some all-zero dimensions
    x[np.abs(x).sum(axis=1) == 0, 0] = 1.0  # cosine needs a non-zero vector
    texts = draw(st.lists(text, min_size=n, max_size=n))
    # one type per field across the whole test keeps the schema valid
    meta = draw(st.lists(st.one_of(st.none(), st.fixed_dictionaries(
        {}, optional={"lang": st.sampled_from(["en", "fr", "数据"]),
                      "year": st.integers(1900, 2100),
                      "score": st.floats(-1e6, 1e6),
                      "flag": st.booleans(),
                      "tags": st.lists(text, max_size=2),
                      "ü": json_value})), min_size=n, max_size=n))
    return ids, x, texts, meta


@settings(max_examples=150, **SETTINGS)
@given(dim=st.sampled_from([1, 8, 63, 64, 65, 200]), data=st.data(), f16=st.booleans())
def test_write_open_round_trip(dim, data, f16):
    ids, x, texts, meta = data.draw(batches(dim))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "p.edgevec")
        with edgevec.Index.create(path, dim=dim, store_f16=f16) as idx:
            idx.add(x, ids=ids, texts=texts, metadata=meta)
        edgevec.verify(path)
        with edgevec.open(path) as idx:
            assert idx.ids() == ids
            unit = x / np.abs(x).max(axis=1, keepdims=True)
            unit /= np.linalg.norm(unit, axis=1, keepdims=True)
            cal = idx._s.calibration()
            for i, ident in enumerate(ids):
                rec = idx.get(ident)
                assert rec.text == (texts[i] or None)
                assert rec.metadata == (meta[i] or None)
                if f16:
                    np.testing.assert_array_equal(rec.vector, unit[i].astype(np.float16))
                else:  # int8 error is at most half a step, plus clipping outside the range
                    lo, hi = cal[0] - 127 * cal[1], cal[0] + 127 * cal[1]
                    want = np.clip(unit[i], lo, hi)
                    assert np.all(np.abs(rec.vector - want) <= cal[1] * 0.5001 + 1e-6)
            np.testing.assert_array_equal(idx._s.segment_array("binary", 0),
                                          codecs.sign_bits(unit))


class IndexModel(RuleBasedStateMachine):
    """The file against a dict: id -> (text, metadata)."""

    def __init__(self):
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "m.edgevec")
        self.model: dict[int, tuple[str, dict]] = {}
        self.next = 0
        self.deleted: set[int] = set()

    @initialize(f16=st.booleans())
    def create(self, f16):
        self.idx = edgevec.Index.create(self.path, dim=16, store_f16=f16)

    @rule(n=st.integers(1, 20), data=st.data())
    def add(self, n, data):
        ids = list(range(self.next, self.next + n))
        self.next += n
        texts = [f"t{i}" for i in ids]
        meta = [{"i": i, "g": data.draw(st.sampled_from(["a", "b", "c"]))} for i in ids]
        x = np.random.default_rng(self.next).normal(size=(n, 16)).astype(np.float32)
        self.idx.add(x, ids=ids, texts=texts, metadata=meta)
        self.model.update({i: (t, m) for i, t, m in zip(ids, texts, meta)})

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete(self, data):
        victims = data.draw(st.lists(st.sampled_from(sorted(self.model)), min_size=1,
                                     max_size=5, unique=True))
        assert self.idx.delete(victims) == len(victims)
        for v in victims:
            del self.model[v]
        self.deleted.update(victims)

    @precondition(lambda self: self.deleted)
    @rule(data=st.data())
    def re_add_deleted(self, data):
        ident = data.draw(st.sampled_from(sorted(self.deleted)))
        self.idx.add(np.ones((1, 16), np.float32), ids=[ident], texts=["again"],
                     metadata=[{"i": ident, "g": "z"}])
        self.deleted.discard(ident)
        self.model[ident] = ("again", {"i": ident, "g": "z"})

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def re_add_deleted_or_duplicate(self, data):
        ident = data.draw(st.sampled_from(sorted(self.model)))
        try:
            self.idx.add(np.ones((1, 16), np.float32), ids=[ident])
        except edgevec.DuplicateId:
            return
        raise AssertionError("a live id was added twice")

    @rule()
    def compact(self):
        self.idx.compact()

    @rule()
    def reopen(self):
        self.idx.close()
        self.idx = edgevec.open(self.path, writable=True)

    @invariant()
    def matches_model(self):
        if not hasattr(self, "idx"):
            return
        assert len(self.idx) == len(self.model)
        assert sorted(self.idx.ids()) == sorted(self.model)
        for ident, (t, m) in list(self.model.items())[:10]:
            rec = self.idx.get(ident)
            assert (rec.text, rec.metadata) == (t, m)

    def teardown(self):
        if hasattr(self, "idx"):
            self.idx.verify()
            self.idx.close()
        self.dir.cleanup()


IndexModel.TestCase.settings = settings(max_examples=80, stateful_step_count=20, **SETTINGS)
test_index_matches_model = IndexModel.TestCase
