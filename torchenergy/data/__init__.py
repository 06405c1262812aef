"""Datasets that work offline (CoNLL-U corpora here; the lead merges the other loaders)."""

from torchenergy.data.conllu import (
    Sentence,
    load_porttinari,
    porttinari_path,
    read_bio,
    read_conllu,
    split_by_document,
    turkish_treebank_path,
)
from torchenergy.data.vocab import Vocabulary, pad_sequences

__all__ = [
    "Sentence",
    "Vocabulary",
    "load_porttinari",
    "pad_sequences",
    "porttinari_path",
    "read_bio",
    "read_conllu",
    "split_by_document",
    "turkish_treebank_path",
]
