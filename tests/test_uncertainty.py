"""scripts/uncertainty.py: the share of faces each unsure rule flags, and the accuracy on each side, on validation."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def script():
    spec = importlib.util.spec_from_file_location("uncertainty", ROOT / "scripts" / "uncertainty.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rows(out: str) -> dict[str, tuple[float, float | None, float | None]]:
    """The table's rows: rule -> (flagged %, accuracy flagged %, accuracy unflagged %); None for '-'."""
    table = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 4 and cells[1].endswith("%"):
            table[cells[0]] = tuple(None if c == "-" else float(c.rstrip("%")) for c in cells[1:])
    return table


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    from fer.inference.weights import save_weights
    from fer.model import create_model

    torch.manual_seed(0)
    model = create_model("mini_xception").eval()
    return save_weights(model, tmp_path_factory.mktemp("unsure") / "w.pt")


def test_rules_flag_the_share_they_say_on_the_models_validation_split(tiny_folder, weights, capsys):
    from fer.data import fer2013 as data
    from fer.evaluation.metrics import predict_proba
    from fer.inference.faces import UNSURE_GAP, UNSURE_TOP, unsure_mask
    from fer.inference.weights import load_model

    assert script().main(["--model", str(weights), "--data", str(tiny_folder)]) == 0
    out = capsys.readouterr().out
    table = rows(out)
    # the faces `fer evaluate --split val` draws for a model that names no split: 20% of Training, seed 0
    ds = data.load(tiny_folder, quiet=True)
    _, index = data.train_val_index(ds, "split", 0.2, 0)
    p = predict_proba(load_model(str(weights))[0], ds.images[index], channels_last=False).numpy()
    right = p.argmax(1) == ds.labels[index]
    assert f"{len(index)} faces" in out and f"{100 * right.mean():.1f}%" in out
    product = f"product: {UNSURE_TOP:.0%} / {UNSURE_GAP * 100:.0f} pts"
    for name, flagged in (("top < 50%", p.max(1) < 0.5), (product, unsure_mask(p))):
        share, acc_flagged, acc_rest = table[name]
        assert share == pytest.approx(100 * flagged.mean(), abs=0.05), name
        if flagged.any():
            assert acc_flagged == pytest.approx(100 * right[flagged].mean(), abs=0.05), name
        if (~flagged).any():
            assert acc_rest == pytest.approx(100 * right[~flagged].mean(), abs=0.05), name
    assert len(table) >= 12


def test_ferplus_labels_are_the_crowds_majority(tiny_folder, weights, tmp_path, capsys):
    from fer.data import fer2013 as data
    from fer.data.votes import read_votes
    from tests.conftest import write_votes

    votes = write_votes(tiny_folder, tmp_path / "votes.csv")
    args = ["--model", str(weights), "--data", str(tiny_folder), "--labels", "ferplus", "--votes", str(votes)]
    assert script().main(args) == 0
    out = capsys.readouterr().out
    ds = data.load(tiny_folder, quiet=True)
    _, index = data.train_val_index(ds, "split", 0.2, 0)
    majority = read_votes(votes, list(ds.keys[index])).majority()
    assert f"the {int((majority >= 0).sum())} with a FER+ crowd majority" in out  # ties and non-faces left out
    assert np.isfinite(rows(out)["top < 50%"][0])
