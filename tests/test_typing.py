"""The stubs match the native module, and the package type-checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_stubtest():
    r = run("mypy.stubtest", "tskafka._tskafka", "--mypy-config-file", "pyproject.toml")
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy():
    r = run("mypy", "python/tskafka")
    assert r.returncode == 0, r.stdout + r.stderr
