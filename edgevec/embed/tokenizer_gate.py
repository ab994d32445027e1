"""The tokenizer gate: what a tokenizer.json may hold before the `tokenizers` library
encodes a text with it, and the bounds every text is tokenized under.

`tokenizers` runs its `Split` and `Replace` regexes with a backtracking engine, so a
pattern such as `(.+)+\\d$` takes exponential time, and a failure inside the library
surfaces as `pyo3_runtime.PanicException`, a BaseException that `except Exception` does
not catch. The gate bounds the file's size before the library parses it (its parser
bounds nesting), then refuses regexes that backtrack without bound (a repeated group that
itself repeats or alternates, backreferences) and oversized vocabularies, as the library
parsed them (cheap: the components' own JSON, not the vocabulary's); the embedder turns
anything the library raises into `ModelError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import ModelError, UnsafeModel, reraise_interrupts

MAX_TOKENIZER_BYTES = 256 << 20
MAX_VOCAB = 1_000_000          # with added tokens; multilingual models have ~250k
MAX_PATTERN = 4096
MAX_DEPTH = 64                 # nesting of a component's JSON (real ones nest ~4 deep)
# A text is cut to this many characters per token of max_tokens before tokenizing: far
# more than max_tokens tokens take in any script, and it bounds the work of a regex.
CHARS_PER_TOKEN = 64


def _refuse(source: str, what: str, rule: str) -> UnsafeModel:
    return UnsafeModel(f"{source}: tokenizer.json {what}: {rule}; edgevec refuses to load "
                       "this model (formats/SPEC.md, 'Security')")


INF = float("inf")


@dataclass
class _Item:
    """One element of a regex sequence: an atom or a group, with its repetition."""

    lo: float = 1
    hi: float = 1
    width: bool = True                    # False: an anchor or lookaround (matches empty)
    branches: list | None = None          # a group's alternatives, each a list of _Item

    @property
    def nullable(self) -> bool:
        return self.lo == 0 or not self.width


class _Unsafe(Exception):
    pass


def _parse(p: str, i: int, depth: int) -> tuple[list[list[_Item]], int]:
    """Parse p[i:] up to an unmatched ')' into alternatives of items; returns them and the
    position of that ')' (or the end)."""
    if depth > 32:
        raise _Unsafe("groups nest deeper than 32")
    branches: list[list[_Item]] = [[]]
    n = len(p)
    while i < n:
        c = p[i]
        if c == ")":
            return branches, i
        if c == "|":
            branches.append([])
            i += 1
            continue
        item = _Item()
        if c == "\\":
            nxt = p[i + 1:i + 2]
            if nxt.isdigit() and nxt != "0" or nxt in ("k", "g"):
                raise _Unsafe(f"backreference or subroutine call at {i}")
            if nxt in ("b", "B", "A", "z", "Z", "G"):
                item.width = False
            i += 2
            if nxt in ("p", "P", "x", "u") and p[i:i + 1] == "{":
                close = p.find("}", i)
                i = n if close < 0 else close + 1
        elif c == "[":
            j = i + 1
            if p[j:j + 1] == "^":
                j += 1
            if p[j:j + 1] == "]":
                j += 1
            nest = 0
            while j < n and (p[j] != "]" or nest):
                if p[j] == "\\":
                    j += 1
                elif p[j] == "[":
                    nest += 1
                elif p[j] == "]":
                    nest -= 1
                j += 1
            i = j + 1
        elif c == "(":
            i += 1
            look = False
            if p[i:i + 1] == "?":
                if p[i + 1:i + 2] == "#":  # a comment
                    close = p.find(")", i)
                    i = n if close < 0 else close + 1
                    continue
                look = p[i + 1:i + 2] in ("=", "!") or p[i + 1:i + 3] in ("<=", "<!")
                while i < n and p[i] not in ":)" and not (look and p[i] in "=!"):
                    i += 1
                if i < n and p[i] == ")":  # an inline flag like (?i): no group
                    i += 1
                    continue
                i += 1
            inner, i = _parse(p, i, depth + 1)
            if i >= n:
                raise _Unsafe("unbalanced '('")
            i += 1
            item.branches, item.width = inner, not look
        elif c in "^$":
            item.width = False
            i += 1
        else:
            i += 1
        # its repetition
        if i < n and p[i] in "*+?{":
            q = p[i]
            if q == "{":
                close = p.find("}", i)
                lo_s, comma, hi_s = p[i + 1:close].partition(",") if close > 0 else ("", "", "")
                if close > 0 and lo_s.strip().isdigit() and (not hi_s.strip()
                                                             or hi_s.strip().isdigit()):
                    item.lo = int(lo_s)
                    item.hi = (INF if not hi_s.strip() else int(hi_s)) if comma else item.lo
                    i = close + 1
                # else: a literal '{'
            else:
                item.lo, item.hi = {"*": (0, INF), "+": (1, INF), "?": (0, 1)}[q]
                i += 1
            if i < n and p[i] in "?+":  # lazy or possessive
                i += 1
            if item.branches is not None and item.hi > 1 and _ambiguous(item.branches):
                raise _Unsafe(f"a repeated group whose body repeats, alternates or has an "
                              f"optional part, before {i}")
        branches[-1].append(item)
    return branches, i


def _ambiguous(branches: list[list[_Item]]) -> bool:
    """Whether a group body can match one string in more than one way when repeated:
    it alternates, or holds a variable repetition or an optional part."""
    if len(branches) > 1:
        return True
    return any(it.lo != it.hi or (it.branches is not None and _ambiguous(it.branches))
               for it in branches[0])


def _unbounded(items: list[_Item]) -> int:
    """Unbounded repetitions in a sequence (inside groups: the most of any alternative)."""
    count = 0
    for it in items:
        if it.hi == INF:
            count += 1
        if it.branches is not None:
            count += max(_unbounded(b) for b in it.branches)
    return count


def regex_problem(pattern: str) -> str | None:
    """Why `pattern` may backtrack without a small bound, or None. Refused:
    backreferences; a group repeated by `*`, `+` or `{n,m}` whose body repeats,
    alternates or has an optional part (`(a+)+`, `(a|ab)*`, `(.*a){20}`: exponential);
    and two unbounded repetitions in one alternative before what must still match
    (`\\w*\\w*\\d`: cubic in the text's length). A repetition at the end of an alternative
    (`\\s*[\\r\\n]+`, `\\s+(?!\\S)`) costs at most quadratic time, which the length cut
    bounds; the pre-tokenizer patterns of GPT-2, GPT-4, Llama 3 and Qwen pass."""
    if len(pattern) > MAX_PATTERN:
        return f"the pattern has {len(pattern)} characters, over {MAX_PATTERN}"
    try:
        branches, end = _parse(pattern, 0, 0)
        if end < len(pattern):
            return f"unbalanced ')' at {end}"
        for items in branches:
            tail = list(items)
            while tail and tail[-1].nullable:
                tail.pop()
            if tail and tail[-1].hi == INF:
                tail.pop()
            if _unbounded(tail) > 1:
                return ("two unbounded repetitions in one alternative before what must "
                        "still match")
    except _Unsafe as exc:
        return str(exc)
    return None


def _walk(node: Any, source: str):
    """Every dict in the JSON tree, depth-checked, without recursion."""
    todo = [(node, 0)]
    while todo:
        value, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise _refuse(source, "nesting", f"nests deeper than {MAX_DEPTH}")
        if isinstance(value, dict):
            yield value
            todo.extend((v, depth + 1) for v in value.values()
                        if isinstance(v, (dict, list)))
        elif isinstance(value, list):
            todo.extend((v, depth + 1) for v in value if isinstance(v, (dict, list)))


def load_tokenizer(data: bytes, source: str):
    """A `tokenizers.Tokenizer` from tokenizer.json `data`, gated: the size checked before
    parsing (the library's parser bounds nesting itself), then what can run at encode
    time (the normalizer's and pre-tokenizer's regexes, as the library parsed them, so no
    spelling of a key evades the check) and the vocabulary's size. UnsafeModel for a
    rule broken, ModelError for a file the library cannot read."""
    from tokenizers import Tokenizer
    if len(data) > MAX_TOKENIZER_BYTES:
        raise _refuse(source, "size", f"{len(data)} bytes is over {MAX_TOKENIZER_BYTES}")
    try:
        tok = Tokenizer.from_str(data.decode("utf-8"))
    except BaseException as exc:  # noqa: BLE001 - pyo3 panics are BaseExceptions
        reraise_interrupts(exc)
        raise ModelError(f"{source}: tokenizer.json cannot be read ({type(exc).__name__}: "
                         f"{str(exc)[:200]}); rebuild the model (edgevec model build NAME)"
                         ) from None
    vocab = tok.get_vocab_size(with_added_tokens=True)
    if vocab > MAX_VOCAB:
        raise _refuse(source, "vocabulary", f"{vocab} entries is over {MAX_VOCAB}")
    for part in ("normalizer", "pre_tokenizer", "post_processor", "decoder"):
        component = getattr(tok, part)
        if component is not None:
            check_component(component.__getstate__(), source, part)
    return tok


def check_component(state: bytes, source: str, part: str) -> None:
    """Refuse a tokenizer component (its JSON, as `tokenizers` serialises it) holding a
    regex that can backtrack without bound."""
    try:
        tree = json.loads(state)
    except (ValueError, RecursionError):
        raise _refuse(source, part, "cannot be read back") from None
    for node in _walk(tree, source):
        pattern = node.get("Regex")
        if pattern is None:
            continue
        if not isinstance(pattern, str):
            raise _refuse(source, f"{part} regex", "a Regex pattern must be a string")
        problem = regex_problem(pattern)
        if problem:
            raise _refuse(source, f"{part} regex {pattern!r:.80}", f"it can backtrack "
                          f"without bound ({problem})")
