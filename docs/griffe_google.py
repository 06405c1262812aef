"""A griffe extension that reads the library's Google-style docstrings as written.

Two habits of the codebase that griffe's Google parser does not understand are rewritten in the
docstring text griffe sees (the source files are not touched):

* Sphinx roles (``:func:`run_chain```, ``:class:`~torchenergy.samplers.MALA```) become code
  spans (``run_chain``, ``MALA``) instead of literal text;
* ``Example:`` (the singular Napoleon section) becomes ``Examples:``, so doctests are rendered as
  code blocks instead of paragraphs;
* ``#:`` comments above a module attribute become its docstring;
* a package that re-exports a function named like its own submodule
  (``torchenergy.losses.contrastive_divergence``) documents the function, as Python sees it;
* one entry naming several parameters, ``dtype, device: of the weights.``, becomes one entry per
  name with the same description, so each name is checked against the signature.

Loaded by ``mkdocs.yml`` (``plugins.mkdocstrings.handlers.python.options.extensions``).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_SECTION = re.compile(r"^(\s*)([A-Z][A-Za-z ]*):\s*$")
_PARAM_SECTIONS = {
    "Args",
    "Arguments",
    "Parameters",
    "Params",
    "Keyword Args",
    "Keyword Arguments",
    "Other Parameters",
    "Attributes",
}
_ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|obj|exc):`(~?)([^`]+)`")
_MULTI = re.compile(r"^(\s+)(\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)+)\s*(\([^)]*\))?:(.*)$")


def _role(m: re.Match[str]) -> str:
    target = m.group(2).strip()
    return f"`{target.rsplit('.', 1)[-1] if m.group(1) else target}`"


def normalize(text: str) -> str:
    """Rewrite Sphinx roles, ``Example:`` headers and multi-name parameter entries (see the
    module docstring)."""
    lines = _ROLE.sub(_role, text).split("\n")
    out: list[str] = []
    section: str | None = None
    section_indent = -1
    item_indent: int | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        indent = len(line) - len(line.lstrip())
        m = _SECTION.match(line)
        if m and (section is None or indent <= section_indent):
            name = m.group(2)
            if name == "Example":
                line = f"{m.group(1)}Examples:"
            section = name if name in _PARAM_SECTIONS else None
            section_indent, item_indent = indent, None
            out.append(line)
            i += 1
            continue
        if section is not None and line.strip():
            if indent <= section_indent:
                section = None
            elif item_indent is None:
                item_indent = indent
        if section is not None and item_indent is not None and indent == item_indent:
            mm = _MULTI.match(line)
            if mm:
                j = i + 1
                cont: list[str] = []
                while j < len(lines) and (
                    not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > item_indent
                ):
                    if not lines[j].strip() and (
                        j + 1 >= len(lines)
                        or len(lines[j + 1]) - len(lines[j + 1].lstrip()) <= item_indent
                    ):
                        break
                    cont.append(lines[j])
                    j += 1
                kind = mm.group(3) or ""
                for name in (n.strip() for n in mm.group(2).split(",")):
                    out.append(f"{mm.group(1)}{name}{' ' + kind if kind else ''}:{mm.group(4)}")
                    out.extend(cont)
                i = j
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


class GoogleHabits(griffe.Extension):
    """Normalise each object's docstring text before griffe parses it."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        # dataclass __init__ signatures first (idempotent): the swap below detaches submodules
        griffe.DataclassesExtension().on_package(pkg=pkg)
        _prefer_exports(pkg)

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = normalize(obj.docstring.value)
        elif obj.is_attribute and (text := comment_docstring(obj)):
            obj.docstring = griffe.Docstring(normalize(text), lineno=obj.lineno, parent=obj)


def comment_docstring(obj: griffe.Object) -> str | None:
    """The ``#:`` comment lines right above an attribute (Sphinx's attribute-doc habit), if any."""
    if obj.lineno is None or obj.filepath is None or isinstance(obj.filepath, list):
        return None
    try:
        lines = obj.filepath.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    found: list[str] = []
    i = obj.lineno - 2
    while i >= 0 and lines[i].lstrip().startswith("#:"):
        found.insert(0, lines[i].lstrip()[2:].strip())
        i -= 1
    return "\n".join(found) or None


def _prefer_exports(module: griffe.Module) -> None:
    """Where ``__all__`` names a submodule that defines an object of the same name, point the
    name at that object (the ``from .x import x`` re-export wins at run time, griffe keeps the
    module)."""
    for sub in list(module.modules.values()):
        if not sub.is_alias:
            _prefer_exports(sub)
    exported = {e for e in (module.exports or ()) if isinstance(e, str)}
    clashes = [
        name
        for name, member in module.members.items()
        if name in exported and member.is_module and not member.is_alias and name in member.members
    ]
    if not clashes:
        return
    for member in module.members.values():  # resolve while the submodule paths still work
        if member.is_alias:
            try:
                _ = member.target
            except (griffe.AliasResolutionError, griffe.CyclicAliasError):
                pass
    for name in clashes:
        target = module.members[name].members[name]
        module.set_member(name, griffe.Alias(name, target, parent=module))
