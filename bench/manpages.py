"""A second real corpus for the quality benchmarks: the manual pages installed on this machine.

Known-item task: the query is a page's one-line description from its NAME section (`ls -
list directory contents` -> "list directory contents"), the target the page's first passage
after NAME (SYNOPSIS, DESCRIPTION...: the first `max_words` words, as `edgevec build` would
cut it). The pages are troff sources (man and mdoc macros); `page_text` turns them into
plain text with the standard library only. Nothing is downloaded: when the machine has no
manual pages, the benchmarks that use them skip.
"""

from __future__ import annotations

import gzip
import os
import re
from collections import Counter

MAN_DIRS = tuple(f"/usr/share/man/man{n}" for n in (1, 5, 7, 8))
# Families of generated pages left out: Google Cloud SDK's ~16,600 `gcloud_*` pages (93% of
# man1 on the machine measured) are one template whose body repeats the description; they
# would make the task one tool's and mostly a substring match.
SKIP_PREFIXES = ("gcloud_", "gcloud.")

# Special characters that carry meaning in text; everything else named becomes a space.
GLYPHS = {"aq": "'", "dq": '"', "lq": '"', "rq": '"', "oq": "'", "cq": "'", "em": " - ",
          "en": "-", "hy": "-", "mi": "-", "bu": " ", "co": "(c)", "rg": "(R)", "tm": "(TM)",
          "ti": "~", "ha": "^", "rs": "\\", "sl": "/", "lh": " ", "rh": " ", "Fo": '"',
          "Fc": '"', "at": "@", "sh": "#", "Do": "$", "pl": "+", "eq": "=", "<=": "<=",
          ">=": ">=", "->": "->", "<-": "<-", "de": " degrees", "fm": "'"}
ESCAPE = re.compile(r"""\\(?:
      f(?:\[[^\]]*\]|\(..|.)          # font change
    | s[+-]?(?:\[[^\]]*\]|\(..|\d+)   # size change
    | \*(?:\[[^\]]*\]|\(..|.)         # string interpolation
    | \((?P<two>..)                    # \(xx special character
    | \[(?P<named>[^\]]*)\]           # \[name] special character
    | [hvwlLDxXoSbNzkY]'[^']*'        # motions, widths, drawing: drop
    | n(?:\[[^\]]*\]|\(..|.)          # number register
    | (?P<char>.)                      # one-character escape
)""", re.VERBOSE)
ONE_CHAR = {"-": "-", "e": "\\", "\\": "\\", " ": " ", "~": " ", "0": " ", "'": "'", "`": "`",
            ".": ".", "t": " "}
FONT_MACROS = {"B", "I", "BR", "BI", "IB", "IR", "RB", "RI", "SB", "SM", "UR", "MT"}
DROP_MACROS = {"TH", "PP", "LP", "P", "TP", "HP", "br", "sp", "nf", "fi", "RS", "RE", "in",
               "ti", "ad", "na", "ne", "hy", "nh", "ft", "ps", "vs", "ll", "ie", "el", "if",
               "ds", "nr", "de", "ig", "so", "tr", "cc", "ce", "EX", "EE", "UE", "ME", "PD",
               "Dd", "Dt", "Os", "Bl", "El", "Bd", "Ed", "Pp", "Lp", "It", "TS", "TE", "ta",
               "Sm", "Ns", "Bk", "Ek", "Op", "Oo", "Oc"}
MDOC_WORDS = re.compile(r"\b(?:Fl|Ar|Cm|Pa|Xr|Ev|Dv|Er|Li|Sy|Em|Ic|Va|Fn|Fa|Ft|Nm|Op|Oo|Oc|"
                        r"Ns|Ql|Dq|Sq|Pq|Aq|Bq|Brq|Qq|No|Ta|Xo|Xc|Ux|Bx|At|St)\b")


def unescape(line: str) -> str:
    def one(m: re.Match) -> str:
        if m.group("two") is not None:
            return GLYPHS.get(m.group("two"), " ")
        if m.group("named") is not None:
            return GLYPHS.get(m.group("named"), " ")
        if m.group("char") is not None:
            return ONE_CHAR.get(m.group("char"), "")
        return ""
    return ESCAPE.sub(one, line)


def _args(rest: str) -> list[str]:
    return [a[1:-1] if len(a) >= 2 and a[0] == a[-1] == '"' else a
            for a in re.findall(r'"[^"]*"|\S+', rest)]


def page_text(source: str) -> tuple[str, str]:
    """(description from NAME, the rest as plain text) of one troff page."""
    name, body, section, in_definition = [], [], None, False
    for raw in source.splitlines():
        if in_definition:  # a macro definition: `.de XX` ... `..`
            in_definition = raw.strip() != ".."
            continue
        if raw.startswith((".\\\"", "'\\\"", '.\\"')) or raw.strip() in (".", "'"):
            continue
        if raw.startswith((".", "'")):
            macro, _, rest = raw[1:].strip().partition(" ")
            if macro in ("de", "de1", "am"):
                in_definition = True
                continue
            if macro in ("SH", "Sh"):
                section = unescape(" ".join(_args(rest))).strip().upper()
                if section != "NAME":
                    body.append(section.capitalize() + ".")
                continue
            if macro == "Nd":
                name.append("- " + unescape(rest))
                continue
            if macro in DROP_MACROS and macro not in ("It", "Op"):
                continue
            if macro in FONT_MACROS or macro in ("SS", "Ss", "IP", "It", "Op"):
                text = " ".join(_args(rest))
            elif len(macro) == 2 and macro[0].isupper() and macro[1].islower():
                text = MDOC_WORDS.sub("", rest)  # mdoc: keep the words, drop the callables
            else:
                continue
        elif section is None:
            continue  # the preamble before the first section: definitions, conditions
        else:
            text = raw
        text = unescape(text)
        (name if section == "NAME" else body).append(text)
    description = " ".join(" ".join(name).split())
    _, dash, description = description.partition(" - ")
    return (description.strip() if dash else ""), " ".join(" ".join(body).split())


def known_item_pairs(dirs=MAN_DIRS, max_words: int = 180, min_body_words: int = 20
                     ) -> list[tuple[str, str, str]]:
    """(page file name, query = NAME description, document = first passage) for each page
    whose description and passage are unique among the pages, in folder then file name
    order; the description is cut out of the passage wherever it appears verbatim. Empty when the
    machine has no manual pages."""
    pairs = []
    for folder in dirs:
        if not os.path.isdir(folder):
            continue
        for fname in sorted(os.listdir(folder)):
            path = os.path.join(folder, fname)
            if fname.startswith(SKIP_PREFIXES) or os.path.islink(path) or \
                    not os.path.isfile(path):
                continue  # a link is another name for a page already read
            try:
                opener = gzip.open if fname.endswith(".gz") else open
                with opener(path, "rt", encoding="utf-8", errors="replace") as f:
                    source = f.read()
            except (OSError, EOFError):
                continue
            if source.lstrip().startswith(".so "):
                continue  # a redirect to another page
            query, body = page_text(source)
            # the target must be found by what it says, not by containing the query
            body = re.sub(re.escape(query), " ", body, flags=re.IGNORECASE) if query else body
            words = body.split()
            if len(query.split()) < 3 or len(words) < min_body_words or \
                    "manual page for" in query.lower():
                continue
            pairs.append((fname, query, " ".join(words[:max_words])))
    seen = Counter(p[1].lower() for p in pairs)
    bodies = Counter(p[2] for p in pairs)
    return [p for p in pairs if seen[p[1].lower()] == 1 and bodies[p[2]] == 1]
