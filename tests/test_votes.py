"""The FER+ crowd votes: read and matched to the faces, taught as eight emotions, scored against the crowd."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fer import EMOTIONS, LABELS
from fer.data import fer2013
from fer.data.votes import FERPLUS_NAMES, HEADER, VotesError, read_votes
from fer.model import ModelConfig, create_model, load_grown
from tests.conftest import fer_in_process, write_csv, write_votes

NARROW = ["--model.stem-channels", "4", "--model.widths", "8,8,8,8", "--batch-size", "32", "--threads", "1"]


@pytest.fixture(scope="session")
def tiny_votes(tiny_folder):
    return write_votes(tiny_folder)


def test_each_face_gets_its_votes_and_faces_without_a_clear_emotion_are_set_apart(tiny_folder, tiny_votes):
    ds = fer2013.load(tiny_folder, quiet=True)
    votes = read_votes(tiny_votes, list(ds.keys))
    train = ds.usage_mask("Training")
    first, second, third, fourth = np.flatnonzero(train)[:4]  # write_votes' special faces of the split
    assert votes.dropped[first] and not votes.used[first]  # FER+ dropped it
    assert not votes.dropped[second] and not votes.used[second]  # 'not a face' on top
    assert votes.used[third] and votes.majority()[third] == -1  # a tie: trained on, never scored
    assert votes.majority()[fourth] == EMOTIONS.index("contempt")
    dist = votes.distribution()
    assert np.allclose(dist[votes.used].sum(1), 1) and not dist[~votes.used].any()
    test = ds.usage_mask("PublicTest")
    ordinary = np.concatenate([np.flatnonzero(train)[4:], np.flatnonzero(test)[4:]])
    assert (votes.majority()[ordinary] == ds.labels[ordinary]).all()  # 7 of 10 voted the folder's emotion
    assert dist[ordinary[0], ds.labels[ordinary[0]]] == pytest.approx(7 / 9)  # 'unknown' is not an emotion
    assert "2 dropped by FER+" in votes.summary() and "2 with 'unknown' or 'not a face' on top" in votes.summary()


def _rewrite(path, line: int, fn):
    lines = path.read_text().splitlines()
    lines[line - 1] = fn(lines[line - 1])
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    "case, edit, says",
    [
        (
            "a face missing",
            lambda p: _rewrite(p, 9, lambda s: "train/angry/Training_99999.png" + s[s.index(",") :]),
            "no votes for train/angry/Training_",
        ),
        ("a wrong header", lambda p: _rewrite(p, 1, lambda s: s.replace("contempt", "scorn")), ":1: header"),
        ("a bad number", lambda p: _rewrite(p, 7, lambda s: s[: s.rindex(",")] + ",x"), ":7: votes"),
        ("a face twice", lambda p: _rewrite(p, 8, lambda s: p.read_text().splitlines()[6]), ":8: train/"),
    ],
    ids=lambda v: v if isinstance(v, str) and " " in v else "",
)
def test_a_votes_file_that_does_not_match_the_faces_stops_at_its_first_bad_line(
    tiny_folder, tmp_path, case, edit, says
):
    path = write_votes(tiny_folder, tmp_path / "votes.csv")
    edit(path)
    ds = fer2013.load(tiny_folder, quiet=True)
    with pytest.raises(VotesError) as e:
        read_votes(path, list(ds.keys))
    assert says in str(e.value) and str(path) in str(e.value)
    if case == "a face twice":
        assert "listed twice (first on line 7)" in str(e.value)


def test_the_csv_form_of_fer2013_is_matched_by_its_rows(tmp_path):
    csv = write_csv(tmp_path / "fer2013.csv", n_train=2, n_test=1)
    ds = fer2013.load(csv, quiet=True)
    assert list(ds.keys[:3]) == ["row:0", "row:1", "row:2"]
    column = {name: i for i, name in enumerate(FERPLUS_NAMES.values())}  # product emotion -> FER+ column
    lines = [",".join(HEADER)]
    for i, label in enumerate(ds.labels):  # votes by row number alone, as FER+ names the faces
        votes = ["0"] * 10
        votes[column[LABELS[label]]] = "10"
        lines.append(",".join(["", LABELS[label], f"{i:07d}", *votes]))
    (tmp_path / "votes.csv").write_text("\n".join(lines) + "\n")
    votes = read_votes(tmp_path / "votes.csv", list(ds.keys))
    assert (votes.majority() == ds.labels).all()


def test_a_fer2013_network_grows_an_eighth_emotion_and_reads_the_seven_as_before():
    torch.manual_seed(0)
    old = create_model(ModelConfig(stem_channels=4, widths=(8, 8, 8, 8), members=2)).eval()
    new = create_model(ModelConfig(stem_channels=4, widths=(8, 8, 8, 8), members=2, num_classes=8)).eval()
    load_grown(new, old.state_dict(), 7)
    x = torch.rand(5, 1, 48, 48)
    with torch.no_grad():
        before, after = old(x), new(x)
    assert torch.allclose(after[:, :7], before, atol=1e-5)
    assert (after[:, 7] < after[:, 6]).all()  # contempt starts as neutral, 2 lower
    with pytest.raises(ValueError, match="cannot shrink"):
        load_grown(old, new.state_dict(), 8)


def test_a_model_taught_by_the_crowd_reads_eight_emotions_everywhere(tiny_folder, tiny_votes, tmp_path, mlflow_store):
    out = tmp_path / "run"
    train = fer_in_process(
        "train",
        "--data",
        str(tiny_folder),
        "--out",
        str(out),
        "--labels",
        "ferplus",
        "--epochs",
        "1",
        *NARROW,
        "--register",
        "false",
        "--progress",
        "false",
    )
    # the faces the votes leave out are counted in the log
    assert "training on 222 of 224 faces (1 dropped by FER+, 1 'unknown' or 'not a face')" in train.stderr
    card = json.loads((out / "card.json").read_text())
    assert card["labels"] == list(EMOTIONS) and card["targets"] == "ferplus"
    assert card["publictest"]["against"] == "the FER+ crowd's majority" and card["publictest"]["mean_kl"] > 0

    crowd = json.loads(
        fer_in_process(
            "evaluate", "--data", str(tiny_folder), "--model", str(out / "best.pt"), "--labels", "ferplus", "--json"
        ).stdout
    )
    assert crowd["labels"] == list(EMOTIONS) and crowd["left_out"] == {"tie": 1, "not_a_face": 2}
    assert crowd["n"] == 56 - 3 and crowd["mean_kl"] > 0 and crowd["against"] == "FER+ crowd majority"
    assert sum(map(sum, crowd["confusion_matrix"])) == crowd["n"]
    own = json.loads(
        fer_in_process("evaluate", "--data", str(tiny_folder), "--model", str(out / "best.pt"), "--json").stdout
    )
    assert own["labels"] == list(LABELS) and own["n"] == 56  # FER2013's labels: its top one of the seven

    face = tiny_folder / "test" / "happy"
    photo = sorted(face.iterdir())[0]
    predicted = json.loads(fer_in_process("predict", str(photo), "--model", str(out / "best.pt"), "--json").stdout)
    probabilities = predicted[0]["faces"][0]["probabilities"]
    assert list(probabilities) == list(EMOTIONS) and sum(probabilities.values()) == pytest.approx(1, abs=1e-5)


def test_mix_blends_the_folder_label_with_the_votes(tiny_folder, tiny_votes):
    from fer.training.config import TrainConfig
    from fer.training.trainer import training_faces

    ds = fer2013.load(tiny_folder, quiet=True)
    cfg = TrainConfig(data=str(tiny_folder), labels="mix", mix_weight=0.25)
    faces = training_faces(cfg, ds)
    plain = training_faces(TrainConfig(data=str(tiny_folder), labels="ferplus"), ds)
    assert faces.y_train.shape == (len(faces.x_train), 8) and np.allclose(faces.y_train.sum(1), 1)
    i = 0  # the first training face: 0.25 on its folder label, the rest as the crowd voted
    label = int(faces.y_train[i].argmax())
    assert faces.y_train[i, label] == pytest.approx(0.25 + 0.75 * plain.y_train[i, label])


def test_the_ferplus_recipe_is_the_production_models_training():
    """`fer train --recipe ferplus` trains what the bundled production model's card says its first network was
    trained with; the other is the same with seed 47."""
    from fer.inference.weights import bundled_card
    from tests.conftest import fer_in_process

    recipe = json.loads(fer_in_process("train", "--recipe", "ferplus", "--print-config").stdout)
    shipped = bundled_card("bundled:ferplus")["config"]
    keys = ["labels", "init", "init_member", "lr", "epochs", "seed", "split_seed", "schedule", "optimizer"]
    keys += ["batch_size", "val", "val_fraction", "weight_decay", "stem_l2", "mixup", "label_smoothing", "augment"]
    assert {k: recipe[k] for k in keys} == {k: shipped[k] for k in keys}
    assert recipe["recipe"] == "ferplus" and recipe["init"] == ""  # from scratch
    members = bundled_card("bundled:ferplus")["members"]
    assert [m["seed"] for m in members] == [46, 47]  # the recipe's seed, then one more
    assert all(m["command"].startswith("python -m fer train --recipe production") for m in members)
