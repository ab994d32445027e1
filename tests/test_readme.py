"""The README's LangChain / LlamaIndex examples run as written (in a temporary folder, with
the models the test session builds: nothing is downloaded)."""

from __future__ import annotations

import contextlib
import io
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _blocks(section: str) -> list[str]:
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


@pytest.mark.parametrize("i, expected", [(0, ["paris", "[Document(id='madrid'", "['madrid'"]),
                                         (1, ["zip"])])
def test_framework_examples_run_as_written(tmp_path, monkeypatch, minilm, i, expected):
    blocks = _blocks("LangChain / LlamaIndex")
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(blocks[i], f"README.md block {i}", "exec"), {})  # noqa: S102
    lines = out.getvalue().splitlines()
    assert len(lines) == len(expected)
    for line, start in zip(lines, expected):  # what the README's comments say it prints
        assert line.startswith(start), (line, start)
