"""The pip path: build the sdist and, from it, the wheel (`python -m build`), install the
wheel into a fresh virtual environment and run the README's "pip users" commands there.

Offline: the fresh environment sees the test environment's installed dependencies (and
the weights package) through a .pth file instead of downloading them, and the wheel goes
in with --no-deps --no-index; what is checked is edgevec's own packaging (modules, data
files, the console script) and the commands a new user types, end to end, with no
traceback at any step."""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import venv

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme_pip_commands() -> list[str]:
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    body = text.split("## Quick start for pip users\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", body, flags=re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_runs_the_readme_pip_commands(tmp_path, models_dir):
    dist = tmp_path / "dist"
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir",
                           str(dist), ROOT], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    sdist, = glob.glob(str(dist / "edgevec-*.tar.gz"))
    wheel, = glob.glob(str(dist / "edgevec-*.whl"))
    with tarfile.open(sdist) as t:
        names = t.getnames()
    for needed in ("edgevec/embed/manifest.json", "edgevec/py.typed", "README.md",
                   "edgevec/integrations/langchain.py"):
        assert any(n.endswith(needed) for n in names), needed

    env_dir = tmp_path / "fresh"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True
                          ).stdout.strip()
    # the dependencies, from this environment (edgevec itself is not importable from there:
    # an editable install is a .pth hook that this path does not run)
    with open(os.path.join(site, "deps-from-tests.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel],
                   check=True, capture_output=True)
    where = subprocess.run([str(py), "-c", "import edgevec; print(edgevec.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert where.startswith(site), where  # the wheel's copy, not the checkout

    work = tmp_path / "work"
    (work / "my_docs").mkdir(parents=True)
    (work / "my_docs" / "zip.txt").write_text(
        "The zipfile module reads and writes ZIP archives: open one with ZipFile.",
        encoding="utf-8")
    (work / "my_docs" / "bread.md").write_text("Baking bread needs flour, water and time.",
                                                encoding="utf-8")
    (work / "notes.jsonl").write_text(
        '{"id": "n1", "text": "Paris is the capital of France.", "lang": "en"}\n',
        encoding="utf-8")
    env = dict(os.environ, EDGEVEC_MODELS_DIR=str(tmp_path / "models"),
               PATH=f"{env_dir / 'bin'}{os.pathsep}{os.environ['PATH']}")
    commands = _readme_pip_commands()
    assert commands[0] == "pip install edgevec"  # done above, from the wheel
    # the steps out of order, or on a missing file: one edgevec line that names the fix
    for line, fix in ((commands[2], "edgevec model build minilm-l6"),
                      ('edgevec search missing.edgevec "a query"', "missing.edgevec")):
        done = subprocess.run(line, shell=True, cwd=work, env=env, capture_output=True,
                              text=True, stdin=subprocess.DEVNULL)
        assert done.returncode == 1 and done.stderr.startswith("edgevec: ") and \
            len(done.stderr.strip().splitlines()) == 1 and fix in done.stderr, done.stderr
    outputs = []
    for line in commands[1:]:
        done = subprocess.run(line, shell=True, cwd=work, env=env, capture_output=True,
                              text=True, stdin=subprocess.DEVNULL)
        assert done.returncode == 0 and "Traceback" not in done.stderr, \
            (line, done.stdout[-1500:], done.stderr[-1500:])
        outputs.append(done.stdout)
    assert "zip.txt" in outputs[-1].splitlines()[0]  # the best hit of the README's query
