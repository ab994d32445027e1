"""The analyzer: text -> terms, the same way when a file is built and when it is queried.

Steps: Unicode NFKC, then casefold (so "Ｆｕｌｌ" and "full", "Straße" and "strasse" meet);
split into runs of Unicode word characters (letters, digits, underscore, marks), keeping
one-letter tokens and numbers; drop tokens of MAX_TOKEN_BYTES or more UTF-8 bytes (hashes,
base64, minified code: they never match a query and bloat the term table); cut runs of CJK
characters (Han, kana, Hangul) into overlapping character bigrams, a lone CJK character
staying a unigram, as Lucene's CJKBigramFilter does (there are no spaces to split on);
drop stop words when a stop list is set; stem with a Snowball stemmer (PyStemmer, the
`edgevec[stem]` extra) when one is set. Lone surrogates and other non-word characters
fall away in the split.

An index stores its analyzer's `settings()` and `fingerprint()`; queries are analyzed
with `Analyzer.from_settings(stored)`, never with the caller's defaults.
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import EdgevecError, InvalidInput, MissingExtra
from ..fileio import sha256_bytes
from ..storage.postings import Postings, length_to_norm

ANALYZER_VERSION = 1  # bump when the same settings would give other terms
MAX_TOKEN_BYTES = 40
SORT_WORDS = 5  # 8-byte words of a token's sort key: every token below MAX_TOKEN_BYTES

_WORD = re.compile(r"\w+")
# Han (with extension A and compatibility ideographs), Hiragana, Katakana, Hangul syllables
_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u309f\u30a0-\u30ff"
                  "\uac00-\ud7af]+")

# English function words: articles, auxiliaries, conjunctions, prepositions, pronouns
STOP_WORDS = {
    "en": frozenset("""a an and are as at be been but by can could did do does for from had
        has have he her his i if in into is it its me my no nor not of on or our she so such
        than that the their them then there these they this those to us was we were what
        when where which who will with would you your""".split()),
}


_MADE = threading.local()  # the analyzers each thread made, by settings (from_settings)


class Analyzer:
    """Text -> terms (see the module doc). `stop_words`: None or "en". `stemmer`: None or
    a Snowball language ("english", "german", ...; needs the `edgevec[stem]` extra)."""

    def __init__(self, *, stop_words: str | None = None, stemmer: str | None = None) -> None:
        if stop_words is not None and stop_words not in STOP_WORDS:
            raise InvalidInput(f"stop_words must be None or one of {sorted(STOP_WORDS)}, got "
                               f"{stop_words!r:.60}")
        if stemmer is not None and not isinstance(stemmer, str):
            raise InvalidInput(f"stemmer must be None or a Snowball language name, got "
                               f"{stemmer!r:.60}")
        self.stop_words = stop_words
        self.stemmer = stemmer
        self._stop = STOP_WORDS[stop_words] if stop_words else frozenset()
        self._stop_bytes = frozenset(w.encode("utf-8") for w in self._stop)
        self._stop_keyed = all(len(w) <= 8 for w in self._stop_bytes)  # (see _sorted_terms)
        self._stop_keys = np.array(sorted(int.from_bytes(w.ljust(8, b"\0"), "big")
                                          for w in self._stop_bytes if len(w) <= 8),
                                   dtype=np.uint64)
        self._stem = _load_stemmer(stemmer) if stemmer else None

    # --- what an index stores ----------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        return {"version": ANALYZER_VERSION, "stop_words": self.stop_words,
                "stemmer": self.stemmer, "max_token_bytes": MAX_TOKEN_BYTES}

    def fingerprint(self) -> str:
        """sha256 over the settings (and so over the analyzer's version)."""
        return sha256_bytes(json.dumps(self.settings(), sort_keys=True).encode())

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> "Analyzer":
        """The analyzer an index was built with; a file from a newer analyzer is refused.
        Every query asks for one: each thread keeps those it made (making one costs more
        than analyzing a query, and a Snowball stemmer must not be shared by threads)."""
        if not isinstance(settings, dict) or settings.get("version") != ANALYZER_VERSION \
                or settings.get("max_token_bytes") != MAX_TOKEN_BYTES:
            raise EdgevecError(f"the index's text analyzer {settings!r:.120} is not one this "
                               f"edgevec knows (analyzer version {ANALYZER_VERSION}); upgrade "
                               "edgevec to query it lexically")
        key = (settings.get("stop_words"), settings.get("stemmer"))
        if not all(v is None or isinstance(v, str) for v in key):
            return cls(stop_words=key[0], stemmer=key[1])  # raises the error that says so
        made = _MADE.__dict__.setdefault("analyzers", {})
        if key not in made:
            if len(made) >= 64:  # settings from many files: keep the table small
                made.clear()
            made[key] = cls(stop_words=key[0], stemmer=key[1])
        return made[key]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Analyzer) and self.settings() == other.settings()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Analyzer(stop_words={self.stop_words!r}, stemmer={self.stemmer!r})"

    # --- analysis ----------------------------------------------------------------------------

    def terms(self, text: str) -> list[str]:
        """The terms of `text`, in order (repeats kept: they are term frequencies)."""
        if not isinstance(text, str):
            raise InvalidInput(f"text must be a str, got {type(text).__name__}")
        if text.isascii():  # the common case, without a loop in Python over the tokens
            tokens = _WORD.findall(text.lower())  # NFKC and casefold change no ASCII
            if max(map(len, tokens), default=0) >= MAX_TOKEN_BYTES:
                tokens = [t for t in tokens if len(t) < MAX_TOKEN_BYTES]
            return self._finish(tokens)
        text = unicodedata.normalize("NFKC", text).casefold()
        tokens = _WORD.findall(text)
        out: list[str] = []
        for token in tokens:
            if len(token.encode("utf-8", "surrogatepass")) >= MAX_TOKEN_BYTES:
                continue
            if _CJK.search(token) is None:
                out.append(token)
                continue
            last = 0
            for run in _CJK.finditer(token):
                if run.start() > last:
                    out.append(token[last:run.start()])
                chars = run.group()
                out.extend([chars] if len(chars) == 1 else
                           [chars[i:i + 2] for i in range(len(chars) - 1)])
                last = run.end()
            if last < len(token):
                out.append(token[last:])
        return self._finish(out)

    def postings(self, texts: Sequence[str], *, compiled: bool = True) -> Postings:
        """The postings of a batch of texts (row i holds texts[i]): the same sections as
        Postings.build([self.terms(t) for t in texts]). `compiled`: cut tokens and build
        postings with the Numba kernels of edgevec.kernels.terms (Python touches each
        distinct token once, for the stop list and the stemmer; a non-ASCII text is
        analysed here and handed over as its terms), else per token in Python."""
        if not compiled:
            return Postings.build([self.terms(t) for t in texts])
        from ..kernels.terms import postings_of, scan_terms
        n = len(texts)
        joined = "\n".join(texts) + "\n"  # "\n" ends each row: no word character
        if joined.isascii():
            buf = joined.lower().encode("ascii")
            sizes = np.fromiter(map(len, texts), dtype=np.int64, count=n)
            final = np.zeros(n, dtype=bool)
        else:
            final = np.fromiter((not t.isascii() for t in texts), dtype=bool, count=n)
            data = [" ".join(self.terms(t)).encode("utf-8") if f else t.lower().encode("ascii")
                    for t, f in zip(texts, final.tolist())]
            buf = b"\n".join(data) + b"\n"
            sizes = np.fromiter(map(len, data), dtype=np.int64, count=n)
        starts = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(sizes + 1, out=starts[1:])
        tok_term, tok_row, arena, offsets, t_final = scan_terms(
            np.frombuffer(buf, dtype=np.uint8), starts, final, MAX_TOKEN_BYTES)
        if self._stem is None and self._stop_keyed and len(offsets) > 1 and \
                int(np.diff(offsets).max()) <= 8 * SORT_WORDS:
            remap, terms = self._sorted_terms(arena, offsets, t_final)
        else:
            remap, terms = self._stemmed_terms(arena, offsets, t_final)
        df, offsets, data_, lengths = postings_of(tok_term, tok_row, remap, n, len(terms))
        return Postings(terms, df, offsets, data_, length_to_norm(lengths),
                        np.array([n, int(lengths.sum())], dtype=np.uint64))

    def _sorted_terms(self, arena: np.ndarray, offsets: np.ndarray, final: np.ndarray
                      ) -> tuple[np.ndarray, list[str]]:
        """Distinct tokens -> (their index in the sorted term table, -1 for stop words;
        the terms), without a Python loop: tokens sorted by big-endian byte keys, equal
        raw and final tokens merged, stop words matched on their keys."""
        from ..kernels.terms import gather, sort_keys
        keys = sort_keys(arena, offsets, SORT_WORDS)
        drop = ~final & np.isin(keys[0], self._stop_keys) & ~keys[1:].any(axis=0)
        order = np.lexsort(keys[::-1])
        order = order[~drop[order]]
        ranked = keys[:, order]
        new = np.ones(len(order), dtype=bool)
        new[1:] = (ranked[:, 1:] != ranked[:, :-1]).any(axis=0)
        remap = np.full(len(final), -1, dtype=np.int64)
        remap[order] = np.cumsum(new) - 1
        text = gather(arena, offsets, order[new]).tobytes().decode("utf-8")
        return remap, text.split("\n")[:-1]

    def _stemmed_terms(self, arena: np.ndarray, offsets: np.ndarray, final: np.ndarray
                       ) -> tuple[np.ndarray, list[str]]:
        """_sorted_terms with the stemmer (or tokens too long for the sort keys): raw
        tokens through the stop list and the stemmer in Python, once each."""
        blob, cuts = arena.tobytes(), offsets.tolist()
        tokens = [blob[a:b] for a, b in zip(cuts, cuts[1:])]  # UTF-8 bytes sort like terms
        term_of: list[bytes | None] = list(tokens)
        raw = []
        for i, f in enumerate(final.tolist()):
            if f:
                continue
            if tokens[i] in self._stop_bytes:
                term_of[i] = None
            else:
                raw.append(i)
        if self._stem is not None:
            stems = self._stem.stemWords([tokens[i].decode("utf-8") for i in raw])
            for i, stem in zip(raw, stems):
                term_of[i] = stem.encode("utf-8")
        distinct = sorted(set(term_of) - {None})
        index = dict(zip(distinct, range(len(distinct))))
        remap = np.array([index.get(t, -1) for t in term_of], dtype=np.int64)
        return remap, [t.decode("utf-8") for t in distinct]

    def _finish(self, out: list[str]) -> list[str]:
        if self._stop:
            out = [t for t in out if t not in self._stop]
        if self._stem is not None:
            out = self._stem.stemWords(out)
        return out


def _load_stemmer(language: str):
    try:
        import Stemmer  # PyStemmer
    except ImportError:
        raise MissingExtra(f"stemming ({language!r}, PyStemmer)", "stem") from None
    if language not in Stemmer.algorithms():
        raise InvalidInput(f"stemmer {language!r} is not a Snowball language; use one of "
                           f"{', '.join(sorted(Stemmer.algorithms()))}")
    return Stemmer.Stemmer(language)
