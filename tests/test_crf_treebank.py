"""A CRF learns a real tagging task (Turkish Web Treebank UPOS), and the example runs."""

import importlib.util
from pathlib import Path

import pytest
import torch

from torchenergy.data import Vocabulary, pad_sequences, read_conllu, turkish_treebank_path
from torchenergy.models import LinearChainCRF


def _turkish_or_skip(n):
    try:
        return read_conllu(turkish_treebank_path("web"))[:n]
    except FileNotFoundError as err:
        pytest.skip(str(err))


def test_crf_on_word_lookup_emissions_fits_turkish_upos():
    sents = _turkish_or_skip(300)
    wv = Vocabulary((w for s in sents for w in s.words), normalize=str.lower)
    tv = Vocabulary((t for s in sents for t in s.tags), pad=None, unk=None)
    words, mask = pad_sequences([wv.encode(s.words) for s in sents])
    tags, _ = pad_sequences([tv.encode(s.tags) for s in sents], pad_value=-1)
    torch.manual_seed(0)
    emit = torch.nn.Embedding(len(wv), len(tv))
    crf = LinearChainCRF(len(tv))
    opt = torch.optim.Adam([*emit.parameters(), *crf.parameters()], lr=0.1)
    losses = []
    for _ in range(40):
        loss = crf.nll(emit(words), tags, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    pred = crf.decode(emit(words), mask).tags
    acc = float((pred[mask] == tags[mask]).double().mean())
    assert losses[-1] < 0.2 * losses[0]
    assert acc > 0.9  # training accuracy of a lookup tagger with transitions
    marg = crf.marginals(emit(words), mask)
    torch.testing.assert_close(marg.sum(2), mask.float(), rtol=0, atol=1e-4)  # float32


def test_pos_tagger_example_smoke():
    from torchenergy.data.conllu import porttinari_path

    try:
        porttinari_path()
    except FileNotFoundError as err:
        pytest.skip(str(err))
    path = Path(__file__).resolve().parents[1] / "examples" / "pos_tagger.py"
    spec = importlib.util.spec_from_file_location("pos_tagger_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    results = mod.main(["--max-sentences", "40", "--epochs", "1", "--threads", "1"])
    assert [r["head"] for r in results] == ["crf", "svm", "softmax"]
    assert all(0.0 <= r["test"] <= 1.0 for r in results)
