"""Smoke runs of the JEM examples and the Fashion-MNIST recipes (skip without the data sets)."""

import runpy
import sys
from pathlib import Path

import pytest
import torch

from torchenergy.data import fashion_mnist


def _missing() -> str | None:
    try:
        fashion_mnist.fashion_mnist_dir()
        from torchenergy.data import animal_mnist_dir, mnist_5k_path

        mnist_5k_path()
        animal_mnist_dir()
    except FileNotFoundError as exc:
        return str(exc)
    return None


needs_data = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))
ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str):
    argv = sys.argv
    sys.argv = [script, *args]
    try:
        return runpy.run_path(str(ROOT / "examples" / script), run_name="__not_main__")["main"](
            list(args)
        )
    finally:
        sys.argv = argv


@pytest.mark.slow
@needs_data
def test_jem_example_quick(tmp_path):
    threads = torch.get_num_threads()
    try:
        res = _run("jem_fashion_mnist.py", "--quick", "--out", str(tmp_path))
    finally:
        torch.set_num_threads(threads)
    assert {"cnn", "jem"} <= set(res)
    assert set(res["jem"]["ood"]["energy"]) == {
        "MNIST-5k",
        "Animal-MNIST",
        "uniform noise",
        "flipped Fashion",
        "inverted Fashion",
    }
    for name in (
        "tables.md",
        "metrics.json",
        "reliability_jem.png",
        "scores_jem.png",
        "samples_jem.png",
    ):
        assert (tmp_path / "eval" / name).is_file()


@needs_data
def test_image_composition_example_quick(tmp_path):
    p = _run("image_composition.py", "--quick", "--out", str(tmp_path))
    assert Path(p).is_file()


@needs_data
def test_conv_ebm_recipe_and_checkpoint_round_trip(tmp_path):
    from torchenergy.cli.image_recipes import load_image_model, train_fashion_mnist

    out = train_fashion_mnist(
        "conv",
        tmp_path,
        steps=2,
        limit=256,
        batch_size=16,
        sgld_steps=2,
        buffer_size=64,
        snapshot_every=1,
        n_snapshot=16,
    )
    assert out["steps"] == 2 and (tmp_path / "buffer.gif").is_file()
    kind, model, ckpt = load_image_model(out["checkpoint"])
    assert kind == "conv" and ckpt["buffer"].shape == (64, 1, 28, 28)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2,)
    with pytest.raises(ValueError, match="model must be one of"):
        train_fashion_mnist("rbm", tmp_path)
