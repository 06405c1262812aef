"""Tagged-sentence corpora that work offline: CoNLL-U and two-column BIO readers, treebank loaders.

* :func:`read_conllu` keeps the word form (column 2) and the UPOS tag (column 4) of every
  syntactic word; multi-word token ranges (``1-2``) and empty nodes (``1.1``) are skipped.
* :func:`read_bio` reads ``word tag`` lines (CoNLL-2003 style; blank lines end sentences).
* :func:`load_porttinari` reads the Portuguese news treebank Porttinari-base shipped in the PyPI
  package ``dante-corpora`` and splits it into train/dev/test **by document**, deterministically:
  a document goes to a split by the CRC-32 of its id, so the split does not depend on file order.
* :func:`turkish_treebank_path` finds the Turkish Web Treebank of ``turkish-treebanks``.

Document ids come from the ``# sent_id`` comment with its trailing sentence number removed
(``FOLHA_DOC000001_SENT003`` -> ``FOLHA_DOC000001``, ``tr-forum:00000222:S023`` ->
``tr-forum:00000222``), else from the last ``# newdoc id``, else the sentence id itself.
(Porttinari has one ``newdoc`` for the whole file, so the sent_id rule is the one that matters.)

Reference: UD CoNLL-U format, https://universaldependencies.org/format.html; L. Duran et al.,
"Porttinari-base", 2023.
"""

from __future__ import annotations

import importlib.util
import re
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "Sentence",
    "load_porttinari",
    "porttinari_path",
    "read_bio",
    "read_conllu",
    "split_by_document",
    "turkish_treebank_path",
]

_DOC_RE = re.compile(r"^(.+?)[_:\-.]S(?:ENT)?\d+$", re.IGNORECASE)
PORTTINARI_INSTALL = "pip install --no-deps dante-corpora==2.0.5"
TURKISH_INSTALL = "pip install --no-deps turkish-treebanks==1.0.0"


class Sentence(NamedTuple):
    """A tagged sentence.

    Attributes:
        words: the word forms.
        tags: one tag per word (UPOS for CoNLL-U).
        sent_id: the sentence id (``""`` when the file gives none).
        doc_id: the document id (see the module docstring).
    """

    words: tuple[str, ...]
    tags: tuple[str, ...]
    sent_id: str = ""
    doc_id: str = ""


def _lines(source: str | Path | Iterable[str]) -> Iterable[str]:
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no such CoNLL file: {str(path)!r}")
        with path.open(encoding="utf-8") as fh:
            yield from fh
    else:
        yield from source


def _doc_id(sent_id: str, newdoc: str) -> str:
    m = _DOC_RE.match(sent_id) if sent_id else None
    if m:
        return m.group(1)
    return newdoc or sent_id


def read_conllu(source: str | Path | Iterable[str]) -> list[Sentence]:
    """Read (word, UPOS) sentences from a CoNLL-U file (or an iterable of its lines).

    Token lines must have 10 tab-separated columns. Lines whose ID is a range (``3-4``, a
    multi-word token such as Portuguese *do* = *de* + *o*) or a decimal (``5.1``, an empty node)
    are skipped; the syntactic words they cover are kept.

    Args:
        source: a path, or an iterable of lines.

    Returns:
        A list of :class:`Sentence`.

    Raises:
        FileNotFoundError: if the path does not exist.
        ValueError: on a malformed token line (message gives the line number and content).

    Example:
        >>> lines = ["# sent_id = D1_SENT1", "1-2\\tdo\\t_\\t_\\t_\\t_\\t_\\t_\\t_\\t_",
        ...          "1\\tde\\tde\\tADP\\t_\\t_\\t_\\t_\\t_\\t_", "2\\to\\to\\tDET\\t_\\t_\\t_\\t_\\t_\\t_", ""]
        >>> read_conllu(lines)[0]
        Sentence(words=('de', 'o'), tags=('ADP', 'DET'), sent_id='D1_SENT1', doc_id='D1')
    """
    out: list[Sentence] = []
    words: list[str] = []
    tags: list[str] = []
    sent_id = ""
    newdoc = ""

    def flush() -> None:
        nonlocal words, tags, sent_id
        if words:
            out.append(Sentence(tuple(words), tuple(tags), sent_id, _doc_id(sent_id, newdoc)))
        words, tags, sent_id = [], [], ""

    for lineno, raw in enumerate(_lines(source), start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            flush()
            continue
        if line.startswith("#"):
            key, _, value = line[1:].partition("=")
            key = key.strip()
            if key == "sent_id":
                if words:
                    flush()
                sent_id = value.strip()
            elif key == "newdoc id":
                newdoc = value.strip()
            continue
        cols = line.split("\t")
        if len(cols) != 10:
            raise ValueError(
                f"line {lineno}: expected 10 tab-separated CoNLL-U columns, got {len(cols)}: "
                f"{line[:80]!r}"
            )
        tok_id = cols[0]
        if "-" in tok_id or "." in tok_id:
            continue
        if not tok_id.isdigit():
            raise ValueError(f"line {lineno}: bad token id {tok_id!r} in {line[:80]!r}")
        words.append(cols[1])
        tags.append(cols[3])
    flush()
    return out


def read_bio(source: str | Path | Iterable[str], *, sep: str | None = None) -> list[Sentence]:
    """Read a two-column ``word tag`` file (BIO/IOB2 tags); blank lines separate sentences.

    Lines starting with ``-DOCSTART-`` start a new document (used as ``doc_id``: ``doc0``, ...).
    With more than two columns the first is the word and the last the tag.

    Args:
        source: a path, or an iterable of lines.
        sep: column separator (default: any whitespace).

    Raises:
        ValueError: on a line with fewer than two columns.

    Example:
        >>> read_bio(["EU B-ORG", "rejects O", "", "Peter B-PER", "Blackburn I-PER"])[1].tags
        ('B-PER', 'I-PER')
    """
    out: list[Sentence] = []
    words: list[str] = []
    tags: list[str] = []
    doc = 0
    for lineno, raw in enumerate(_lines(source), start=1):
        line = raw.strip()
        if line.startswith("-DOCSTART-"):
            if words:
                out.append(Sentence(tuple(words), tuple(tags), "", f"doc{doc}"))
                words, tags = [], []
            doc += 1
            continue
        if not line:
            if words:
                out.append(Sentence(tuple(words), tuple(tags), "", f"doc{doc}"))
                words, tags = [], []
            continue
        cols = line.split(sep)
        if len(cols) < 2:
            raise ValueError(f"line {lineno}: expected 'word tag', got {line[:80]!r}")
        words.append(cols[0])
        tags.append(cols[-1])
    if words:
        out.append(Sentence(tuple(words), tuple(tags), "", f"doc{doc}"))
    return out


def _package_dir(module: str, install: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the {module!r} package is not installed; run `{install}`")
    return Path(next(iter(spec.submodule_search_locations)))


def porttinari_path() -> Path:
    """Path of Porttinari-base ``annotated.conllu`` in the installed ``dante-corpora`` package.

    Raises:
        FileNotFoundError: naming ``pip install --no-deps dante-corpora==2.0.5`` when missing.
    """
    path = _package_dir("dante", PORTTINARI_INSTALL) / "data" / "porttinari" / "annotated.conllu"
    if not path.is_file():
        raise FileNotFoundError(
            f"Porttinari-base not found at {str(path)!r}; run `{PORTTINARI_INSTALL}`"
        )
    return path


def turkish_treebank_path(section: str = "web") -> Path:
    """Path of the Turkish Web Treebank (``"web"`` or ``"wiki"``) of ``turkish-treebanks``.

    The package installs its CoNLL-U files in ``<site-packages>/data/``.

    Raises:
        ValueError: unknown section. FileNotFoundError: naming the install command when missing.
    """
    if section not in ("web", "wiki"):
        raise ValueError(f"section must be 'web' or 'wiki', got {section!r}")
    pkg = _package_dir("turkish_treebanks", TURKISH_INSTALL)
    path = pkg.parent / "data" / f"{section}.conllu"
    if not path.is_file():
        raise FileNotFoundError(
            f"Turkish treebank {section!r} not found at {str(path)!r}; run `{TURKISH_INSTALL}`"
        )
    return path


def split_by_document(
    sentences: Sequence[Sentence], fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
) -> dict[str, list[Sentence]]:
    """Deterministic train/dev/test split by document id (CRC-32 of the id into 10,000 buckets).

    All sentences of a document land in the same split, and the assignment of a document does
    not depend on the others or on file order.

    Args:
        sentences: sentences with ``doc_id``.
        fractions: target (train, dev, test) shares of documents, summing to 1.

    Returns:
        ``{"train": [...], "dev": [...], "test": [...]}`` in file order.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be three shares >= 0 summing to 1, got {fractions!r}")
    cut1 = round(fractions[0] * 10_000)
    cut2 = round((fractions[0] + fractions[1]) * 10_000)
    out: dict[str, list[Sentence]] = {"train": [], "dev": [], "test": []}
    for s in sentences:
        bucket = zlib.crc32(s.doc_id.encode("utf-8")) % 10_000
        out["train" if bucket < cut1 else "dev" if bucket < cut2 else "test"].append(s)
    return out


def load_porttinari(split: str | None = None) -> list[Sentence] | dict[str, list[Sentence]]:
    """Porttinari-base (Portuguese news, UPOS) from ``dante-corpora``, split by document 80/10/10.

    Args:
        split: ``"train"``, ``"dev"``, ``"test"``, or ``None`` for the dict of all three.

    Raises:
        FileNotFoundError: naming the pip command when ``dante-corpora`` is missing.
        ValueError: unknown split.
    """
    if split not in (None, "train", "dev", "test"):
        raise ValueError(f"split must be 'train', 'dev', 'test' or None, got {split!r}")
    parts = split_by_document(read_conllu(porttinari_path()))
    return parts if split is None else parts[split]
