"""CoNLL-U / BIO readers, vocabularies and the offline treebanks."""

import pytest
import torch

from torchenergy.data.conllu import (
    PORTTINARI_INSTALL,
    Sentence,
    load_porttinari,
    porttinari_path,
    read_bio,
    read_conllu,
    split_by_document,
    turkish_treebank_path,
)
from torchenergy.data.vocab import Vocabulary, pad_sequences

SAMPLE = """# newdoc id = whole-file
# sent_id = FOLHA_DOC000007_SENT001
# text = Gosto do mar.
1\tGosto\tgostar\tVERB\t_\t_\t_\t_\t_\t_
2-3\tdo\t_\t_\t_\t_\t_\t_\t_\t_
2\tde\tde\tADP\t_\t_\t_\t_\t_\t_
3\to\to\tDET\t_\t_\t_\t_\t_\t_
3.1\tX\tx\tNOUN\t_\t_\t_\t_\t_\t_
4\tmar\tmar\tNOUN\t_\t_\t_\t_\t_\t_
5\t.\t.\tPUNCT\t_\t_\t_\t_\t_\t_

# sent_id = tr-forum:00000222:S023
1\tBurda\tbur\tPRON\t_\t_\t_\t_\t_\t_

1\tsem\tsem\tADP\t_\t_\t_\t_\t_\t_
"""


def test_read_conllu_skips_ranges_and_empty_nodes(tmp_path):
    path = tmp_path / "x.conllu"
    path.write_text(SAMPLE, encoding="utf-8")
    sents = read_conllu(path)
    assert len(sents) == 3
    assert sents[0] == Sentence(
        ("Gosto", "de", "o", "mar", "."),
        ("VERB", "ADP", "DET", "NOUN", "PUNCT"),
        "FOLHA_DOC000007_SENT001",
        "FOLHA_DOC000007",
    )
    assert sents[1].doc_id == "tr-forum:00000222"
    assert sents[2].words == ("sem",) and sents[2].doc_id == "whole-file"  # falls back to newdoc
    assert read_conllu(SAMPLE.splitlines()) == sents


def test_read_conllu_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such CoNLL file"):
        read_conllu(tmp_path / "missing.conllu")
    with pytest.raises(ValueError, match="line 1: expected 10"):
        read_conllu(["1\tword\tNOUN"])
    with pytest.raises(ValueError, match="bad token id"):
        read_conllu(["x\ta\ta\tNOUN\t_\t_\t_\t_\t_\t_"])


def test_read_bio():
    lines = [
        "-DOCSTART- -X- O O",
        "",
        "EU NNP B-NP B-ORG",
        "rejects VBZ B-VP O",
        "",
        "Peter B-PER",
        "Blackburn I-PER",
        "-DOCSTART-",
        "Hi O",
    ]
    sents = read_bio(lines)
    assert [s.tags for s in sents] == [("B-ORG", "O"), ("B-PER", "I-PER"), ("O",)]
    assert [s.doc_id for s in sents] == ["doc1", "doc1", "doc2"]
    with pytest.raises(ValueError, match="line 1"):
        read_bio(["lonely"])


def test_vocabulary_unknown_words_and_padding():
    v = Vocabulary(["Casa", "casa", "mar", "sol"], min_count=2, normalize=str.lower)
    assert v.itos == ["<pad>", "<unk>", "casa"]
    assert v.encode(["CASA", "lua"]) == [2, 1] and v.pad_id == 0 and v.unk_id == 1
    assert "Casa" in v and "sol" not in v
    tags = Vocabulary(["NOUN", "VERB", "NOUN"], pad=None, unk=None)
    assert tags.encode(["NOUN", "VERB"]) == [0, 1] and tags.decode([1, -1]) == ["VERB"]
    with pytest.raises(KeyError, match="ADJ"):
        tags.encode(["ADJ"])
    with pytest.raises(ValueError, match="min_count"):
        Vocabulary([], min_count=0)
    x, m = pad_sequences([[3, 4], [5]], pad_value=-1)
    assert torch.equal(x, torch.tensor([[3, 4], [5, -1]])) and m.tolist() == [
        [True, True],
        [True, False],
    ]


def test_split_by_document_is_deterministic_and_keeps_documents_together():
    sents = [
        Sentence(("w",), ("X",), f"D{d}_SENT{i}", f"D{d}") for d in range(300) for i in range(3)
    ]
    a = split_by_document(sents)
    b = split_by_document(list(reversed(sents)))
    for name in ("train", "dev", "test"):
        assert {s.sent_id for s in a[name]} == {s.sent_id for s in b[name]}
    docs = [{s.doc_id for s in a[n]} for n in ("train", "dev", "test")]
    assert not (docs[0] & docs[1]) and not (docs[0] & docs[2]) and not (docs[1] & docs[2])
    assert 0.65 < len(docs[0]) / 300 < 0.95 and docs[1] and docs[2]
    with pytest.raises(ValueError, match="fractions"):
        split_by_document(sents, (0.5, 0.5, 0.5))


def _porttinari_or_skip():
    try:
        return porttinari_path()
    except FileNotFoundError as err:
        pytest.skip(str(err))


def test_porttinari_splits_by_document():
    _porttinari_or_skip()
    parts = load_porttinari()
    sizes = {k: len(v) for k, v in parts.items()}
    assert sum(sizes.values()) == 8420  # every sentence of Porttinari-base
    assert sizes["train"] > 6000 and sizes["dev"] > 500 and sizes["test"] > 500
    docs = {k: {s.doc_id for s in v} for k, v in parts.items()}
    assert not (docs["train"] & docs["test"]) and not (docs["dev"] & docs["test"])
    tags = {t for s in parts["train"] for t in s.tags}
    assert "_" not in tags and {"NOUN", "VERB", "ADP", "PUNCT"} <= tags and len(tags) <= 17
    assert load_porttinari("test") == parts["test"]
    with pytest.raises(ValueError, match="split"):
        load_porttinari("valid")


def test_turkish_treebank_reads():
    try:
        path = turkish_treebank_path("web")
    except FileNotFoundError as err:
        pytest.skip(str(err))
    sents = read_conllu(path)
    assert len(sents) > 1000 and all(len(s.words) == len(s.tags) for s in sents)
    assert sents[0].doc_id == "tr-forum:00000222"
    with pytest.raises(ValueError, match="section"):
        turkish_treebank_path("news")


def test_missing_package_error_names_the_pip_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "dante" else real(name, *a)
    )
    with pytest.raises(FileNotFoundError, match="pip install --no-deps dante-corpora"):
        porttinari_path()
    assert "dante-corpora==2.0.5" in PORTTINARI_INSTALL
