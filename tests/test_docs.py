"""The documentation stays true: its runnable code blocks run, and the site builds with --strict.

A Python block in ``docs/**/*.md`` is runnable when the line before its fence is ``<!-- run -->``.
The runnable blocks of one page run in order in one namespace (a later block may use an earlier
block's names), in a temporary working directory.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MARK = "<!-- run -->"
_FENCE = re.compile(r"^```+\s*python\b")


def runnable_blocks(text: str, where: str = "page") -> list[tuple[int, str]]:
    """``(line number, code)`` of every block marked runnable in one Markdown page."""
    lines = text.splitlines()
    blocks = []
    fence = ""  # the fence of the code block we are in ("" outside): markers inside don't count
    for i, line in enumerate(lines):
        stripped = line.strip()
        if fence:
            if stripped == fence:
                fence = ""
            continue
        if stripped.startswith("```"):
            fence = stripped[: len(stripped) - len(stripped.lstrip("`"))]
            continue
        if stripped != MARK:
            continue
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        if j == len(lines) or not _FENCE.match(lines[j].strip()):
            raise ValueError(f"{where}:{i + 1}: {MARK} must be followed by a ```python fence")
        fence = lines[j].strip()[: len(lines[j].strip()) - len(lines[j].strip().lstrip("`"))]
        k = j + 1
        while k < len(lines) and lines[k].strip() != fence:
            k += 1
        if k == len(lines):
            raise ValueError(f"{where}:{j + 1}: unclosed code block")
        blocks.append((j + 2, "\n".join(lines[j + 1 : k])))
    return blocks


PAGES = sorted(
    p for p in DOCS.rglob("*.md") if runnable_blocks(p.read_text(encoding="utf-8"), str(p))
)


def test_runnable_blocks_are_found():
    assert runnable_blocks(f"x\n{MARK}\n```python\nprint(1)\n```\n") == [(4, "print(1)")]
    assert runnable_blocks(f"````markdown\n{MARK}\n```python\nprint(1)\n```\n````\n") == []
    with pytest.raises(ValueError, match="must be followed"):
        runnable_blocks(f"{MARK}\n```bash\nls\n```\n")
    assert PAGES, "no page in docs/ has a runnable block"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_runnable_blocks_run(page, tmp_path, monkeypatch, capsys):
    import torch

    rel = page.relative_to(ROOT)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small ops: one thread is several times faster on a busy machine
    try:
        for line, code in runnable_blocks(page.read_text(encoding="utf-8"), str(rel)):
            try:
                exec(compile(code, f"{rel}:{line}", "exec"), namespace)
            except Exception as e:
                raise AssertionError(f"the code block at {rel}:{line} failed: {e!r}") from e
    finally:
        torch.set_num_threads(threads)
    capsys.readouterr()


_DOC_DEPS = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")


def _missing_doc_deps() -> list[str]:
    missing = []
    for name in _DOC_DEPS:
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except ModuleNotFoundError:
            missing.append(name)
    return missing


@pytest.mark.skipif(
    bool(_missing_doc_deps()),
    reason="documentation tools missing: pip install -e '.[docs]' (then make docs)",
)
def test_site_builds_strict(tmp_path):
    """``mkdocs build --strict`` offline: every API page renders every name in ``__all__``
    (docs/hooks.py), every link and snippet resolves, every docstring parses."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    problems = [ln for ln in (proc.stdout + proc.stderr).splitlines() if not ln.startswith("INFO")]
    assert proc.returncode == 0, "\n".join(problems[-40:])
    assert (tmp_path / "site" / "api" / "samplers.html").is_file()
