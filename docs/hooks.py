"""MkDocs hooks (``mkdocs.yml: hooks``), all offline.

* API pages: a ``nav`` entry ``- torchenergy.foo: api/foo.md`` whose file does not exist gets a
  generated page, ``# torchenergy.foo`` + ``::: torchenergy.foo`` (so a new subpackage's reference
  is that one line in ``mkdocs.yml``; write ``docs/api/foo.md`` yourself to add prose).
* API pages: every name in the ``__all__`` of each ``::: torchenergy.x`` directive must be rendered
  (an anchor ``id="torchenergy.x.name"``); a missing one is a warning, so ``--strict`` fails.
* Benchmarks: the PNGs in ``bench/results/`` are served under ``benchmarks/`` (not copied into
  ``docs/``), so the result pages included from there show their figures.
* Gallery: an image under ``gallery/`` that has not been generated yet (``make gallery``) is
  replaced by a note saying how to make it, so the site builds from a clean checkout.
"""

from __future__ import annotations

import importlib
import logging
import re
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.torchenergy")

_DIRECTIVE = re.compile(r"^:::\s*(torchenergy[\w.]*)\s*$", re.MULTILINE)
_IMAGE = re.compile(r"!\[([^\]]*)\]\((gallery/[^)\s]+)\)(\{[^}]*\})?")
_modules: dict[str, list[str]] = {}
_BENCH = Path(__file__).resolve().parents[1] / "bench" / "results"


def _nav_api_entries(items: Any) -> list[tuple[str, str]]:
    """``(module, path)`` of the nav entries ``torchenergy.x: api/x.md``, at any depth."""
    found: list[tuple[str, str]] = []
    for item in items or []:
        if isinstance(item, dict):
            for key, value in item.items():
                if isinstance(value, str):
                    if re.fullmatch(r"torchenergy(\.\w+)*", key) and value.startswith("api/"):
                        found.append((key, value))
                else:
                    found.extend(_nav_api_entries(value))
        elif isinstance(item, list):
            found.extend(_nav_api_entries(item))
    return found


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for module, uri in _nav_api_entries(config["nav"]):
        if files.get_file_from_path(uri) is None:
            files.append(File.generated(config, uri, content=f"# {module}\n\n::: {module}\n"))

    for png in sorted(_BENCH.glob("*.png")):
        uri = f"benchmarks/{png.name}"
        if files.get_file_from_path(uri) is None:
            files.append(File.generated(config, uri, abs_src_path=str(png)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    _modules[page.file.src_uri] = _DIRECTIVE.findall(markdown)
    docs_dir = Path(config["docs_dir"])
    page_dir = (docs_dir / page.file.src_uri).parent

    def replace(m: re.Match[str]) -> str:
        if (page_dir / m.group(2)).is_file():
            return m.group(0)
        return (
            f'\n\n!!! note "Not generated yet: {m.group(2)}"\n'
            f"    Run `make gallery` (or `python docs/gen_gallery.py`) and rebuild.\n\n"
        )

    return _IMAGE.sub(replace, markdown)


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    ids = set(re.findall(r'id="(torchenergy[\w.]*)"', html))
    for name in _modules.get(page.file.src_uri, []):
        try:
            module = importlib.import_module(name)
        except ImportError as e:  # mkdocstrings has already complained about the directive
            log.warning("%s: cannot import %s (%s)", page.file.src_uri, name, e)
            continue
        public = getattr(module, "__all__", None)
        if public is None:
            log.warning(
                "%s: %s has no __all__; the reference lists __all__", page.file.src_uri, name
            )
            continue
        missing = [n for n in public if f"{name}.{n}" not in ids]
        if missing:
            log.warning(
                "%s: names in %s.__all__ not rendered: %s", page.file.src_uri, name, missing
            )
    return html
