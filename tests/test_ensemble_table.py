"""scripts/ensemble_table.py set against a shipped model of another shape (`--against-model`), face by face."""

import os
import subprocess
import sys
from pathlib import Path

import torch

from fer.data import fer2013 as data
from fer.evaluation.metrics import predict_logits
from fer.inference.weights import load_model
from fer.model import ModelConfig, stack
from fer.training.bundle import bundle
from fer.training.config import TrainConfig
from fer.training.runs import load_runs

ROOT = Path(__file__).resolve().parents[1]


def trained_run(folder: Path, data_dir: Path, seed: int, split_seed: int, widths=(8, 8, 8, 8)) -> Path:
    """A run folder as `fer train` leaves it: a small network, four epochs on the tiny faces (its answers vary)."""
    from fer.data.augment import AugmentConfig
    from fer.training.trainer import Trainer

    cfg = TrainConfig(data=str(data_dir), seed=seed, split_seed=split_seed, epochs=4, batch_size=16, lr=3e-3)
    cfg.model = ModelConfig(stem_channels=4, widths=widths, flip_tta=True)
    cfg.augment, cfg.progress, cfg.out = AugmentConfig(0, 0, 0, 0, 0), False, str(folder)
    torch.manual_seed(seed)
    (x, y), (x_val, y_val) = data.train_val(data.load(data_dir, quiet=True), *cfg.validation_split)
    Trainer(cfg).fit(x, y, x_val, y_val)
    return folder


def table(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "ensemble_table.py"), *args],
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_subsets_are_set_face_by_face_against_a_shipped_model_of_another_shape(tiny_folder, tmp_path):
    runs = [str(trained_run(tmp_path / f"r{s}", tiny_folder, seed=s, split_seed=0)) for s in (1, 2)]
    shipped = tmp_path / "shipped"  # another shape, same split: what a bundled model of another family is
    bundle(
        trained_run(tmp_path / "wide", tiny_folder, seed=3, split_seed=0, widths=(8, 8, 16, 16)), tiny_folder, shipped
    )
    out = table(*runs, "--against-model", str(shipped / "model.pt"))
    assert out.returncode == 0, out.stderr

    ds = data.load(tiny_folder, quiet=True)
    _, (x_val, y_val) = data.train_val(ds, *TrainConfig(split_seed=0).validation_split)
    y = torch.as_tensor(y_val, dtype=torch.long)
    model, _ = load_model(str(shipped / "model.pt"))
    base = predict_logits(model, x_val, channels_last=False).argmax(1) == y
    lines = out.stdout.split("\nagainst ", 1)[1].splitlines()
    assert lines[0].startswith(f"{shipped / 'model.pt'} (as served, {base.float().mean():.2%} val, ")
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[3:] if line.startswith("|")]
    assert 1 <= len(rows) <= 5  # the best 5 of the subsets and augmentations within 5 ms
    assert any(row[3] != row[4] for row in rows)  # the networks disagree, in both directions unevenly
    nets = {Path(r).name: load_runs(r)[0] for r in runs}
    for label, tta, _, only_here, only_there, _ in rows:
        net = stack([nets[name] for name in label.split(" + ")])
        net.set_tta(tta)
        mine = predict_logits(net, x_val, channels_last=False).argmax(1) == y
        assert (int(only_here), int(only_there)) == (int((mine & ~base).sum()), int((base & ~mine).sum()))

    other = tmp_path / "other"  # selected on the validation split of split seed 1: it trained on some of these faces
    bundle(trained_run(tmp_path / "s1", tiny_folder, seed=4, split_seed=1), tiny_folder, other)
    refused = table(*runs, "--against-model", str(other / "model.pt"))
    assert refused.returncode == 2 and "was selected on another validation split" in refused.stderr
    assert "split seed 1) than the runs" in refused.stderr and "split seed 0)" in refused.stderr
    both = table(*runs, "--against", "r1", "--against-model", str(shipped / "model.pt"))
    assert both.returncode == 2 and "give one" in both.stderr
