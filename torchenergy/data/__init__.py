"""Data sets that work offline: 2-D toys, sklearn digits, Fashion-MNIST, MNIST-5k, Animal-MNIST,
CoNLL-U corpora."""

from torchenergy.data.animal_mnist import animal_mnist_dir, load_animal_mnist
from torchenergy.data.conllu import (
    Sentence,
    load_porttinari,
    porttinari_path,
    read_bio,
    read_conllu,
    split_by_document,
    turkish_treebank_path,
)
from torchenergy.data.digits import DigitsDataset, load_digits
from torchenergy.data.fashion_mnist import (
    FASHION_MNIST_CLASSES,
    fashion_mnist_dir,
    load_fashion_mnist,
    read_idx,
)
from torchenergy.data.mnist import load_mnist_5k, mnist_5k_path
from torchenergy.data.toy import TOY_DENSITIES, ToyDataset, sample_toy
from torchenergy.data.vocab import Vocabulary, pad_sequences

__all__ = [
    "FASHION_MNIST_CLASSES",
    "TOY_DENSITIES",
    "DigitsDataset",
    "Sentence",
    "ToyDataset",
    "Vocabulary",
    "animal_mnist_dir",
    "fashion_mnist_dir",
    "load_animal_mnist",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist_5k",
    "load_porttinari",
    "mnist_5k_path",
    "pad_sequences",
    "porttinari_path",
    "read_bio",
    "read_conllu",
    "read_idx",
    "sample_toy",
    "split_by_document",
    "turkish_treebank_path",
]
