"""The served classifier: every path `fer.inference.weights.serve` chooses among gives the model's own answers, the
choice is made once per model and CPU and kept, and a forced path is honoured.

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/test_served.py
"""

from __future__ import annotations

import pytest
import torch

from fer.inference import weights
from fer.inference.weights import SERVED_PATHS, ExportedModel, serve
from fer.model import ModelConfig, create_model


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread, as a serving worker runs: two threads on small networks beside other jobs cost 3× here."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def trained_looking(num_classes: int, members: int) -> torch.nn.Module:
    """A small network whose BatchNorm has statistics of its own, so its logits spread like a trained one's."""
    torch.manual_seed(num_classes)
    cfg = ModelConfig(num_classes=num_classes, widths=(8, 16, 32, 32), flip_tta=True, temperature=1.3, members=members)
    net = create_model(cfg).train()
    with torch.no_grad():
        net(torch.randn(64, 1, 48, 48))
        net.head.weight.mul_(30)  # logits a few units apart, as a trained head gives
    return net.eval()


def exported(net: torch.nn.Module) -> ExportedModel:
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(net, (torch.rand(2, 1, 48, 48),), dynamic_shapes={"x": {0: batch}})
    return ExportedModel(program.module())


@pytest.mark.parametrize("num_classes, members", [(7, 1), (8, 2)])
def test_every_served_path_gives_the_models_outputs(num_classes, members):
    net = trained_looking(num_classes, members)
    faces = torch.rand(9, 1, 48, 48)
    with torch.no_grad():
        expected = net(faces)
    assert expected.shape == (9, num_classes) and expected.std() > 0.3  # answers worth comparing
    for source in (net, exported(net)):  # a bundled or file model, and the pt2 graph of an MLflow one
        for path in SERVED_PATHS:
            served = serve(source, path)
            assert served.served_path == path
            with torch.no_grad():
                for n in (1, 9):  # a photo's one face and a chunk's many
                    got = served(faces[:n])
                    assert got.shape == (n, num_classes)
                    assert torch.allclose(got, expected[:n], atol=1e-5), (type(source).__name__, path)


def test_the_choice_is_measured_once_and_kept(monkeypatch, tmp_path):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(weights.SERVED_PATH_ENV, raising=False)
    net = trained_looking(7, 1)
    first = serve(net)
    assert first.served_path in SERVED_PATHS and set(first.ms_per_face) <= set(SERVED_PATHS)
    assert first.served_path == min(first.ms_per_face, key=first.ms_per_face.get)
    assert len(list((tmp_path / "served").glob("*.json"))) == 1

    def no_timing(paths):
        raise AssertionError("timed again")

    monkeypatch.setattr(weights, "_ms_per_face", no_timing)
    again = serve(net)  # read back: no export to time again
    assert again.served_path == first.served_path and again.ms_per_face == first.ms_per_face
    monkeypatch.setenv(weights.SERVED_PATH_ENV, "eager")
    assert serve(net).served_path == "eager"  # the environment forces a path
    with pytest.raises(ValueError, match="unknown served path 'tensorrt'; expected auto or one of onnxruntime"):
        serve(net, "tensorrt")
