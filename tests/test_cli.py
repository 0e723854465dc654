"""The command-line contract other tools rely on: `fer --help`, `fer evaluate --json`, a smoke training."""

import json

import numpy as np
import pytest

from fer.inference.weights import bundled_card, save_weights
from fer.model import create_model
from tests.conftest import FER2013, fer_cli, fer_in_process, need_shared, write_csv


def test_help_lists_every_command():
    out = fer_cli("--help").stdout
    for command in ("train", "evaluate", "predict", "data", "bundle", "models"):
        assert command in out


def test_train_help_lists_every_config_flag():
    out = fer_cli("train", "--help").stdout
    for flag in ("--epochs", "--label-smoothing", "--augment.rotation", "--augment.erase", "--model.widths"):
        assert flag in out
    assert "2-33%" in out  # a per cent sign in a field's comment is printed, not taken for a format


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_weights(create_model().eval(), tmp_path_factory.mktemp("w") / "w.pt")


def check_contract(out: dict, n: int):
    assert 0 <= out["accuracy"] <= 1 and out["n"] == n
    assert out["labels"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    cm = np.array(out["confusion_matrix"])
    assert cm.shape == (7, 7) and cm.sum() == n
    assert out["accuracy"] == pytest.approx(np.trace(cm) / n)
    for i, label in enumerate(out["labels"]):
        assert out["per_class"][label] == pytest.approx(cm[i, i] / cm[i].sum())


def test_evaluate_json_on_folder_and_csv(tiny_folder, tmp_path, weights):
    out = json.loads(fer_cli("evaluate", "--data", str(tiny_folder), "--model", str(weights), "--json").stdout)
    check_contract(out, 8 * 7)
    csv = write_csv(tmp_path / "fer.csv", n_train=3, n_test=2)
    out = json.loads(fer_cli("evaluate", "--data", str(csv), "--model", str(weights), "--json", "--tta", "flip").stdout)
    check_contract(out, 2 * 7)
    assert out["tta"] == "flip"


def test_evaluate_table_and_figure(tiny_folder, tmp_path, weights):
    fig = tmp_path / "cm.png"
    out = fer_cli("evaluate", "--data", str(tiny_folder), "--model", str(weights), "--figure", str(fig)).stdout
    assert "overall" in out and "happy" in out and str(fig) in out
    assert fig.stat().st_size > 1000


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "nope.pt"], "not a file, 'bundled' (or bundled:ferplus, bundled:fer2013), or an MLflow URI"),
        (["--split", "holdout"], "unknown split 'holdout'"),
        (["--split", "private"], "no PrivateTest images"),
        (["--tta", "rotate"], "unknown test-time augmentation 'rotate'"),
    ],
)
def test_evaluate_errors_are_one_line(tiny_folder, weights, args, message):
    base = ["--model", str(weights)] if "--model" not in args else []
    proc = fer_cli("evaluate", "--data", str(tiny_folder), *base, *args, check=False)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_evaluate_val_draws_the_split_the_model_was_selected_on(tiny_folder, tmp_path):
    from fer.data import fer2013 as data

    selected_on = {"seed": 3, "split_seed": -1, "val": "split", "val_fraction": 0.3}
    weights = save_weights(create_model().eval(), tmp_path / "w.pt", card={"config": selected_on})
    base = ["evaluate", "--data", str(tiny_folder), "--split", "val", "--json"]
    own = fer_cli(*base, "--model", str(weights))
    _, (_, y) = data.train_val(data.load(tiny_folder, quiet=True), "split", 0.3, 3)
    out = json.loads(own.stdout)
    assert (out["val_fraction"], out["val_seed"], out["n"]) == (0.3, 3, len(y)) and "warning" not in own.stderr
    other = fer_cli(*base, "--model", str(weights), "--seed", "4")
    assert json.loads(other.stdout)["val_seed"] == 4
    assert "selected on the validation split drawn with seed 3; --seed 4 draws another" in other.stderr
    unknown = fer_cli(*base, "--model", str(save_weights(create_model().eval(), tmp_path / "bare.pt")))
    assert json.loads(unknown.stdout)["val_seed"] == 0 and "does not say which validation split" in unknown.stderr


@pytest.mark.parametrize("name", ["ferplus", "fer2013"])
def test_bundled_model_card_is_honest(name):
    """Each bundled model's card states what `fer evaluate` measures on PublicTest, against what the card says it
    was scored against: the FER+ crowd's majority (3,416 faces) or FER2013's labels (all 3,589)."""
    need_shared()
    card = bundled_card(f"bundled:{name}")
    crowd = "crowd" in card["publictest"].get("against", "")
    # the FER+ figure by the README's shortest command: --data defaults to ../shared/data/fer2013, as for train
    args = ["--labels", "ferplus"] if crowd else ["--data", str(FER2013)]
    out = json.loads(fer_in_process("evaluate", "--model", f"bundled:{name}", *args, "--json").stdout)  # --split test
    assert out["n"] == card["publictest"]["n"] == (3416 if crowd else 3589)
    assert out["accuracy"] == pytest.approx(card["publictest"]["accuracy"], abs=1e-4)
    assert out["confusion_matrix"] == card["publictest"]["confusion_matrix"]
    if crowd:
        assert out["mean_kl"] == pytest.approx(card["publictest"]["mean_kl"], abs=1e-4)


def test_smoke_training_on_real_data(tmp_path, mlflow_store):
    need_shared()
    out = tmp_path / "smoke"
    fer_cli(
        "train",
        "--data",
        str(FER2013),
        "--out",
        str(out),
        "--train-limit",
        "1500",
        "--epochs",
        "2",
        "--progress",
        "false",
        "--register",
        "false",
    )
    report = json.loads((out / "report.json").read_text())
    assert report["split"] == "PublicTest" and report["n"] == 3589
    assert report["accuracy"] > 1 / 7  # better than chance after two short epochs
    card = json.loads((out / "card.json").read_text())
    assert card["epochs_run"] == 2 and card["params"] == 56_951
