"""The lexical analyzer (the same terms at build and at query time, on any text) and the
postings of a segment."""

from __future__ import annotations

import os
import pickle
import signal
import sys

import numpy as np
import pytest

import edgevec
from edgevec.lexical import Analyzer
from edgevec.lexical.analyzer import MAX_TOKEN_BYTES
from edgevec.storage.postings import Postings, _varints, decode_varints, length_to_norm, norm_table


def test_normalises_case_and_width_and_splits_on_word_characters():
    a = Analyzer()
    assert a.terms("Ｆｕｌｌ-width ＡＢＣ, Straße: x_y é 42 a I") == [
        "full", "width", "abc", "strasse", "x_y", "é", "42", "a", "i"]  # one-letter, numbers
    assert a.terms("e\u0301") == ["é"]  # NFKC composes
    assert a.terms("") == [] and a.terms(" ,.;!? ") == []


def test_tokens_of_max_bytes_or_more_are_dropped():
    a = Analyzer()
    keep, drop = "k" * (MAX_TOKEN_BYTES - 1), "d" * MAX_TOKEN_BYTES
    assert a.terms(f"{keep} {drop} ok") == [keep, "ok"]
    assert a.terms("é" * (MAX_TOKEN_BYTES // 2)) == []  # bytes, not characters


def test_cjk_runs_become_character_bigrams():
    a = Analyzer()
    assert a.terms("中文分词") == ["中文", "文分", "分词"]
    assert a.terms("中") == ["中"]  # a lone character stays a unigram
    assert a.terms("abc中def 日本語のテキスト 한국어") == [
        "abc", "中", "def", "日本", "本語", "語の", "のテ", "テキ", "キス", "スト", "한국", "국어"]


def test_stop_words_and_repeats():
    assert Analyzer(stop_words="en").terms("The cat is on THE mat, the cat") == [
        "cat", "mat", "cat"]  # repeats stay: they are term frequencies
    assert Analyzer(stop_words="en").terms("the of and") == []
    with pytest.raises(edgevec.InvalidInput, match="stop_words"):
        Analyzer(stop_words="xx")


def test_hostile_text_never_crashes():
    a = Analyzer()
    assert a.terms("bad \ud800 surrogate") == ["bad", "surrogate"]
    big = "word " * 2_000_000  # 10 MB
    assert len(a.terms(big)) == 2_000_000
    with pytest.raises(edgevec.InvalidInput, match="str"):
        a.terms(b"bytes")


def test_settings_round_trip_and_fingerprint():
    a = Analyzer(stop_words="en")
    b = Analyzer.from_settings(a.settings())
    assert a == b and a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != Analyzer().fingerprint()
    with pytest.raises(edgevec.EdgevecError, match="analyzer version"):
        Analyzer.from_settings(dict(a.settings(), version=99))


def test_stemming_with_pystemmer_or_a_clear_missing_extra(monkeypatch):
    pytest.importorskip("Stemmer")
    a = Analyzer(stemmer="english")
    assert a.terms("Running cats ran") == ["run", "cat", "ran"]
    assert Analyzer.from_settings(a.settings()) == a
    with pytest.raises(edgevec.InvalidInput, match="Snowball"):
        Analyzer(stemmer="klingon")
    monkeypatch.setitem(sys.modules, "Stemmer", None)  # as if not installed
    with pytest.raises(edgevec.MissingExtra, match=r"pip install 'edgevec\[stem\]'") as err:
        Analyzer(stemmer="english")
    again = pickle.loads(pickle.dumps(err.value))  # crosses process boundaries intact
    assert isinstance(again, edgevec.EdgevecError) and again.extra == "stem"


# --- postings ---------------------------------------------------------------------------------


def test_postings_hold_every_row_and_frequency_of_every_term():
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(50)] + ["é", "中文", "\U0001f600x"]
    rows = [list(rng.choice(words, size=rng.integers(0, 30))) for _ in range(400)]
    rows[7] = []
    p = Postings.build(rows)
    assert p.terms == sorted(set(sum(rows, [])), key=lambda t: t.encode("utf-8"))
    assert p.totals.tolist() == [400, sum(len(r) for r in rows)]
    for t, term in enumerate(p.terms):
        got_rows, got_tf = p.rows_of(t)
        want = {i: r.count(term) for i, r in enumerate(rows) if term in r}
        assert got_rows.tolist() == sorted(want) and got_tf.tolist() == [
            want[i] for i in sorted(want)]
        assert p.df[t] == len(want)
    assert int(p.offsets[-1]) == len(p.data)


def test_postings_of_nothing():
    p = Postings.build([[], []])
    assert p.terms == [] and len(p.data) == 0 and p.offsets.tolist() == [0]
    assert p.norms.tolist() == [0, 0] and p.totals.tolist() == [2, 0]


def test_varints_round_trip_and_truncation_is_an_error():
    values = np.array([0, 1, 127, 128, 300, 2**21, 2**35, 2**63 - 1], dtype=np.int64)
    assert decode_varints(_varints(values)).tolist() == values.tolist()
    with pytest.raises(ValueError, match="inside a value"):
        decode_varints(_varints(values)[:-1])


def test_length_norms_are_exact_below_32_and_within_6_percent_above():
    lengths = np.arange(0, 2**19, 3)
    codes = length_to_norm(lengths)
    table = norm_table()
    assert (table[codes[lengths < 32]] == lengths[lengths < 32]).all()
    assert (np.diff(codes.astype(int)) >= 0).all() and (table[codes] <= lengths).all()
    big = lengths >= 32
    assert ((lengths[big] - table[codes[big]]) / lengths[big]).max() < 0.0625
    assert length_to_norm(np.array([2**19, 10**9])).tolist() == [255, 255]


# --- BM25 -------------------------------------------------------------------------------------


def _bm25_by_hand(docs, query, k1=1.2, b=0.75):
    """The formula, row by row in float64 (lengths below 32 are exact in the norms)."""
    n = len(docs)
    avgdl = sum(len(d) for d in docs) / n
    out = np.zeros(n)
    for t in set(query):
        df = sum(t in d for d in docs)
        w = query.count(t) * np.log1p((n - df + 0.5) / (df + 0.5))
        for i, d in enumerate(docs):
            tf = d.count(t)
            if tf:
                out[i] += w * tf / (tf + k1 * (1 - b + b * len(d) / avgdl))
    return out


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_bm25_matches_the_formula_across_segments_with_masks(engine, monkeypatch):
    from edgevec import search
    from edgevec.lexical import bm25
    monkeypatch.setattr(search.ENGINE, "mode", engine)
    rng = np.random.default_rng(5)
    vocab = [f"t{i}" for i in range(40)]
    p_zipf = 1 / np.arange(1, 41)
    docs = [list(rng.choice(vocab, size=rng.integers(0, 25), p=p_zipf / p_zipf.sum()))
            for _ in range(700)]
    cuts = [0, 250, 251, 700]  # a one-row segment too
    segs = [Postings.build(docs[a:b]) for a, b in zip(cuts, cuts[1:])]
    allow = [rng.random(b - a) < 0.7 for a, b in zip(cuts, cuts[1:])]
    for query in (["t0"], ["t3", "t17", "t3"], ["t39", "nope"], ["nope"], []):
        want = _bm25_by_hand(docs, query)
        ok = np.concatenate(allow)
        for masks in (None, allow):
            s, r = bm25.search(segs, query, 10, allow=masks)
            eligible = np.flatnonzero((want > 0) & (ok if masks else True))
            order = eligible[np.lexsort((eligible, -want[eligible]))][:10]
            np.testing.assert_allclose(s, want[r], rtol=2e-6)
            # ranks agree except where float32 rounding swaps near-ties
            assert len(r) == len(order)
            assert np.allclose(want[r], want[order], rtol=1e-5)


def test_bm25_scores_equal_bm25s_lucene_on_the_same_tokens():
    bm25s = pytest.importorskip("bm25s")
    from edgevec.lexical import bm25
    rng = np.random.default_rng(9)
    vocab = [f"w{i}" for i in range(60)]
    docs = [list(rng.choice(vocab, size=rng.integers(1, 30))) for _ in range(300)]
    ref = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
    ref.index(docs, show_progress=False)
    query = ["w1", "w7", "w33"]
    want = ref.get_scores(query)
    s, r = bm25.search([Postings.build(docs)], query, 300)
    np.testing.assert_allclose(s, want[r], rtol=1e-5)
    assert set(r.tolist()) == set(np.flatnonzero(want > 0).tolist())


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_damaged_postings_are_an_error_not_a_crash(engine, monkeypatch):
    from edgevec import search
    from edgevec.lexical import bm25
    monkeypatch.setattr(search.ENGINE, "mode", engine)
    p = Postings.build([["a", "b"], ["a"], ["b", "c"]])
    bad_row = Postings(p.terms, p.df, p.offsets, np.full_like(p.data, 0x05), p.norms, p.totals)
    runaway = Postings(p.terms, p.df, p.offsets, np.full_like(p.data, 0xFF), p.norms, p.totals)
    past_end = Postings(p.terms, p.df, p.offsets + np.uint64(3), p.data, p.norms, p.totals)
    # an offset of 2**63 or more is negative as an int64: it once read before the data
    huge = p.offsets.copy()
    huge[0] = np.uint64(2**63)
    past_sign = Postings(p.terms, p.df, huge, p.data, p.norms, p.totals)
    for damaged in (bad_row, runaway, past_end, past_sign):
        with pytest.raises(edgevec.FormatError, match="damaged"):
            bm25.search([damaged], ["a", "b", "c"], 3)
    # a document count above the rows (or 0) would make a weight <= 0: refused before
    for df in (p.df + np.uint32(3), p.df * np.uint32(0)):
        with pytest.raises(edgevec.FormatError, match="document count is"):
            bm25.search([Postings(p.terms, df, p.offsets, p.data, p.norms, p.totals)],
                        ["a"], 3)


def test_scratch_is_clean_after_damage_and_threads_do_not_change_results(monkeypatch):
    """The Numba path keeps a per-thread accumulator that the kernel clears; a damaged
    segment stops midway and must still leave it clean. Segments scored in threads (and
    batches spread over threads) give exactly the serial results."""
    from edgevec import search
    from edgevec.lexical import bm25
    monkeypatch.setattr(search.ENGINE, "mode", "numba")
    rng = np.random.default_rng(5)
    docs = [[f"t{j}" for j in rng.integers(0, 30, size=rng.integers(1, 12))]
            for _ in range(400)]
    segments = [Postings.build(docs[a:a + 80]) for a in range(0, 400, 80)]
    queries = [[f"t{j}" for j in rng.integers(0, 35, size=3)] for _ in range(20)]
    serial = [bm25.search(segments, q, 7, threads=1) for q in queries]
    p = segments[0]
    damaged = Postings(p.terms, p.df, p.offsets, np.full_like(p.data, 0x05), p.norms, p.totals)
    with pytest.raises(edgevec.FormatError):
        bm25.search([damaged], queries[0], 7, threads=1)
    monkeypatch.setattr(bm25, "PARALLEL_BYTES", 0)
    for q, (s, r) in zip(queries, serial):
        s2, r2 = bm25.search(segments, q, 7, threads=3)
        assert r2.tolist() == r.tolist() and s2.tobytes() == s.tobytes()
    monkeypatch.setattr(search.ENGINE, "mode", "numpy")
    for q, (s, r) in zip(queries, serial):
        s2, r2 = bm25.search(segments, q, 7, threads=2)
        assert r2.tolist() == r.tolist() and s2.tobytes() == s.tobytes()
    assert bm25.in_threads(lambda x: x * x, list(range(7)), 3) == [x * x for x in range(7)]
    # an error in one share is raised only once every share has finished (a share left
    # running could read a file the caller closes next)
    import threading
    raised, done = threading.Event(), []

    def fn(item):
        if item == 0:
            raised.set()
            raise edgevec.FormatError("damaged")
        raised.wait(60)
        done.append(item)
    with pytest.raises(edgevec.FormatError):
        bm25.in_threads(fn, [0, 1], 2)
    assert done == [1]
    with pytest.raises(edgevec.InvalidInput, match="threads"):
        bm25.search(segments, queries[0], 7, threads=0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
def test_threaded_bm25_works_in_a_forked_child(monkeypatch):
    """A process that forks after searching (multiprocessing's default on Linux) gets a
    copy of the thread pool without its threads: the child must make its own."""
    import select
    from edgevec.lexical import bm25
    monkeypatch.setattr(bm25, "PARALLEL_BYTES", 0)
    segments = [Postings.build([["a", "b"], ["a"]]), Postings.build([["b"], ["a", "c"]])]
    want = bm25.search(segments, ["a", "b"], 3, threads=2)[1].tolist()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one line, then leave without running pytest's teardown
        try:
            got = bm25.search(segments, ["a", "b"], 3, threads=2)[1].tolist()
            os.write(write, (" ".join(map(str, got)) + "\n").encode())
        finally:
            os._exit(0)
    os.close(write)
    ready, _, _ = select.select([read], [], [], 60)  # a guard against a hang, not a timing
    line = os.read(read, 1024).decode() if ready else ""
    os.close(read)
    if not line:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert line == " ".join(map(str, want)) + "\n"


# --- fusion -----------------------------------------------------------------------------------


def test_rrf_sums_reciprocal_ranks_and_says_who_found_each_row():
    from edgevec.fusion import rrf
    dense, lexical = np.array([5, 3, 9]), np.array([3, 7])
    scores, rows, ranks = rrf([dense, lexical], 10, rrf_k=10)
    assert rows.tolist() == [3, 5, 7, 9]  # 3 is in both lists
    np.testing.assert_allclose(scores, [1 / 12 + 1 / 11, 1 / 11, 1 / 12, 1 / 13])
    assert ranks.tolist() == [[2, 1], [1, 0], [0, 2], [3, 0]]
    s, r, _ = rrf([np.array([1, 2]), np.array([2, 1])], 1)  # a tie goes to the lower row
    assert r.tolist() == [1] and rrf([np.zeros(0, np.int64)], 3)[1].tolist() == []
    assert rrf([dense, lexical], 10, depth=1)[1].tolist() == [3, 5]
    with pytest.raises(edgevec.InvalidInput, match="rrf_k"):
        rrf([dense], 3, rrf_k=0)


def test_check_postings_finds_every_kind_of_damage():
    from edgevec.kernels.bm25 import check_postings
    p = Postings.build([["a", "b"], ["a"], ["b", "c", "c"]])

    def check(data=p.data, offsets=p.offsets, df=p.df, n=3):
        lengths = np.zeros(n, dtype=np.int64)
        return check_postings(data, offsets, df, lengths), lengths
    code, lengths = check()
    assert code == 0 and lengths.tolist() == [2, 1, 3]
    assert check(df=p.df + np.uint32(1))[0] == 1          # a posting count is not its df
    assert check(n=2)[0] > 0                               # a row past the segment
    assert check(offsets=p.offsets[::-1].copy())[0] == -1  # offsets do not start at 0
    for t, value in ((1, 2**63), (1, 2**64 - 1), (2, len(p.data) + 1)):
        bad = p.offsets.copy()                             # past the data, or negative
        bad[t] = np.uint64(value)                          # as an int64
        assert check(offsets=bad)[0] == t
    zero_gap = p.data.copy()
    zero_gap[0] = 0
    assert check(data=zero_gap)[0] == 1


def test_numpy_and_numba_bm25_give_the_same_rows_and_scores(monkeypatch):
    """A new process scores BM25 in NumPy until loading Numba pays (search.ScanEngine):
    both must return the same rows and bit-identical scores."""
    from edgevec import search
    from edgevec.lexical import bm25
    rng = np.random.default_rng(11)
    vocab = [f"v{i}" for i in range(300)]
    docs = [list(rng.choice(vocab, size=rng.integers(0, 200))) for _ in range(2000)]
    from edgevec.storage.strings import StringTable, encode_table
    p = Postings.build(docs)
    # as read from a file: a string table of terms (looked up by the kernel under Numba)
    read = Postings(StringTable(*encode_table(p.terms)), p.df, p.offsets, p.data, p.norms,
                    p.totals)
    queries = [list(rng.choice(vocab, 4)) + ["absent"] for _ in range(5)]
    got = {}
    for engine in ("numba", "numpy"):
        monkeypatch.setattr(search.ENGINE, "mode", engine)
        got[engine] = [bm25.search([p], q, 50) for q in queries]
        got[engine + " file"] = [bm25.search([read, p], q, 50) for q in queries]
    for (s1, r1), (s2, r2) in zip(got["numba"], got["numpy"]):
        assert np.array_equal(r1, r2) and np.array_equal(s1, s2)
    for (s1, r1), (s2, r2) in zip(got["numba file"], got["numpy file"]):
        assert np.array_equal(r1, r2) and np.array_equal(s1, s2)


def test_weighted_fusion_normalises_each_list_and_weighs_them():
    from edgevec.fusion import weighted
    dense_rows, dense_scores = np.array([4, 2, 9]), np.array([0.9, 0.5, 0.1])
    lex_rows, lex_scores = np.array([2, 7]), np.array([12.0, 3.0])
    s, r, ranks = weighted([dense_rows, lex_rows], [dense_scores, lex_scores], 10, alpha=0.5)
    # dense normalised: 4 -> 1, 2 -> 0.5, 9 -> 0; lexical: 2 -> 1, 7 -> 0
    assert r.tolist() == [2, 4, 7, 9]
    np.testing.assert_allclose(s, [0.75, 0.5, 0.0, 0.0])
    assert ranks.tolist() == [[2, 1], [1, 0], [0, 2], [3, 0]]  # ties go to the lower row
    assert weighted([dense_rows, lex_rows], [dense_scores, lex_scores], 3,
                    alpha=1.0)[1].tolist() == [4, 2, 7]  # alpha 1: dense order, then ties
    assert weighted([dense_rows, lex_rows], [dense_scores, lex_scores], 1,
                    alpha=0.0)[1].tolist() == [2]
    one = weighted([np.array([5]), np.zeros(0, np.int64)], [np.array([0.3]), np.zeros(0)], 5,
                   alpha=0.3)  # a single score normalises to 1
    np.testing.assert_allclose(one[0], [0.3])
    for bad in (-0.1, 1.5, float("nan"), "0.5", True):
        with pytest.raises(edgevec.InvalidInput, match="alpha"):
            weighted([dense_rows, lex_rows], [dense_scores, lex_scores], 3, alpha=bad)


@pytest.mark.parametrize("seed", range(5))
def test_merged_postings_equal_postings_built_from_the_kept_rows(seed):
    """Compaction merges segments' postings through the row map: the same sections as
    analysing the kept rows' texts again (terms only deleted rows held disappear)."""
    rng = np.random.default_rng(seed)
    words = ["a", "b", "fox", "dog", "ü", "中文", "zz", "x1"]
    segments = [[list(rng.choice(words, size=rng.integers(0, 12))) for _ in range(n)]
                for n in rng.integers(0, 30, size=3)]
    keeps = [np.flatnonzero(rng.random(len(rows)) < 0.6) for rows in segments]
    merged = Postings.merge([(Postings.build(rows), keep) for rows, keep in
                             zip(segments, keeps)])
    want = Postings.build([rows[i] for rows, keep in zip(segments, keeps) for i in keep])
    assert merged.terms == want.terms
    for field in ("df", "offsets", "data", "norms", "totals"):
        np.testing.assert_array_equal(getattr(merged, field), getattr(want, field))


@pytest.mark.parametrize("stem", [None, "english"])
def test_compiled_postings_equal_python_postings(stem):
    """Analyzer.postings(compiled=True) (edgevec.kernels.terms) builds the very sections
    of the per-token Python path: ASCII and non-ASCII rows mixed, stop words, stemming,
    tokens at the byte limit, empty rows, separators of every kind."""
    if stem:
        pytest.importorskip("Stemmer")
    rng = np.random.default_rng(7)
    words = ["The", "quick", "FOXES", "running", "a", "of", "x" * (MAX_TOKEN_BYTES - 1),
             "y" * MAX_TOKEN_BYTES, "under_score", "42", "Straße", "中文分词", "ÉCOLE", "ü",
             "don't", "e-mail", "tab\tsep", "new\nline", "crlf\r\n", "\u00a0nbsp"]
    texts = ["", "   ", "\n"] + [" ".join(rng.choice(words, size=rng.integers(0, 30)))
                                   for _ in range(300)]
    ascii_only = [t for t in texts if t.isascii()]
    for a in (Analyzer(stop_words="en", stemmer=stem), Analyzer(stemmer=stem)):
        for batch in (texts, ascii_only, texts[:1], []):
            want, got = a.postings(batch, compiled=False), a.postings(batch)
            assert got.terms == want.terms
            for field in ("df", "offsets", "data", "norms", "totals"):
                np.testing.assert_array_equal(getattr(got, field), getattr(want, field))


def test_compiled_scan_grows_its_tables_on_many_distinct_tokens():
    a = Analyzer()
    texts = [" ".join(f"t{i}_{j}" for j in range(500)) for i in range(200)]  # 100k terms
    texts.append("z" * 30 + " " + "w" * 1_000_000)  # one long row, one long token dropped
    got, want = a.postings(texts), a.postings(texts, compiled=False)
    assert len(got.terms) == 100_001 and got.terms == want.terms
    np.testing.assert_array_equal(got.data, want.data)


def test_term_lookup_kernel_finds_what_the_python_binary_search_finds():
    """A query's terms are looked up in each segment's term table by a kernel (the Python
    binary search cost ~15 us a term: most of a small lexical query): the same index or
    -1 for every term, on odd tables (empty, one term, prefixes, non-ASCII, past the
    ends); a damaged offset is a StringTableError, not a read out of bounds."""
    from edgevec.kernels.bm25 import find_terms
    from edgevec.storage.strings import StringTable, encode_table
    rng = np.random.default_rng(3)
    words = sorted({"".join(rng.choice(list("abcé"), size=rng.integers(1, 6)))
                    for _ in range(300)} | {"ab", "abc", "abcd", "z" * 30},
                   key=lambda w: w.encode("utf-8"))
    queries = words[::7] + ["", "a", "abcdx", "b" * 9, "zz", "é", "\u4e2d", "z" * 31]
    for table_words in ([], ["only"], words):
        offsets, data = encode_table(table_words)
        table = StringTable(offsets, data)
        raw = [q.encode("utf-8") for q in queries]
        ends = np.cumsum([0] + [len(r) for r in raw]).astype(np.int64)
        out = np.empty(len(raw), np.int64)
        assert find_terms(offsets, data, np.frombuffer(b"".join(raw), np.uint8), ends, out) == 0
        want = [Postings(table, *[np.zeros(0)] * 5).find(q) for q in queries]
        assert out.tolist() == want
    bad = offsets.copy()
    bad[len(bad) // 2] = 2**63 + 5
    assert find_terms(bad, data, np.frombuffer(b"ab", np.uint8), np.array([0, 2]),
                      np.empty(1, np.int64)) == -1
