import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fer.inference.weights import BUNDLED_NAMES
from fer.model import count_parameters, create_model
from fer.training import trainer as train
from fer.training.config import recipe
from fer.training.trainer import EarlyStopping, Plateau, autocast_bf16, channels_last_choice, cosine_lr, native_bf16
from tests.conftest import ROOT, fer_cli, fer_in_process


@pytest.mark.parametrize(
    "values, drops_at",
    [
        ([1.0, 0.9, 0.8, 0.7, 0.6], []),  # steady improvement: never drops
        ([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [3, 6]),  # flat: drops every `patience` epochs
        ([1.0, 1.1, 1.2, 0.5, 0.6, 0.7, 0.8], [6]),  # improvement resets the count
        ([1.0, 0.99995, 0.99992, 0.99991], [3]),  # changes below min_delta do not count as improvement
    ],
)
def test_plateau_drops_after_patience(values, drops_at):
    p = Plateau(factor=0.1, patience=3, mode="min", min_delta=1e-4)
    assert [i for i, v in enumerate(values) if p.step(v)] == drops_at


@pytest.mark.parametrize(
    "values, mode, stops_at",
    [
        ([0.5, 0.4, 0.4, 0.4], "min", 3),
        ([0.5, 0.6, 0.6, 0.6], "max", 3),
        ([0.5, 0.4, 0.3, 0.2], "min", None),
        ([0.5, 0.5, 0.49, 0.5, 0.5], "min", 4),  # an improvement restarts the count,
    ],
)
def test_early_stopping(values, mode, stops_at):
    e = EarlyStopping(patience=2, mode=mode)
    stopped = [i for i, v in enumerate(values) if e.step(v)]
    assert (stopped[0] if stopped else None) == stops_at


def test_patience_zero_never_stops_and_the_production_recipe_runs_its_schedule_out():
    e = EarlyStopping(patience=0, mode="min")
    assert not any(e.step(v) for v in [0.5] + [0.6 + i / 100 for i in range(200)])  # val_loss rising for 200 epochs
    assert recipe("production").patience == 0 and recipe("paper").patience == 50  # Table 2 keeps its 50


TINY = ["--epochs", "6", "--batch-size", "16", "--progress", "false", "--register", "false", "--val", "public"]


def final_metrics(out):
    report = json.loads((out / "report.json").read_text())
    return report["validation"]["accuracy"], report["validation"]["loss"], report["accuracy"]


def test_kill9_then_resume_ends_like_an_uninterrupted_run(tiny_folder, tmp_path, mlflow_store):
    # the interrupted run's first epochs run in another process, so equality also shows the same command
    # gives the same numbers twice
    a, c = tmp_path / "a", tmp_path / "c"
    fer_cli("train", "--data", str(tiny_folder), "--out", str(a), *TINY)
    history = torch.load(a / "last.pt", weights_only=True)["state"]["history"]
    assert len(history) == 6 and history[-1]["train_loss"] < history[0]["train_loss"]

    # interrupted run: kill -9 once two epochs are checkpointed, then --resume
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fer", "train", "--data", str(tiny_folder), "--out", str(c), *TINY],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 240
    killed_after = None
    while time.time() < deadline and proc.poll() is None:
        if (c / "last.pt").exists():
            epoch = torch.load(c / "last.pt", weights_only=True)["state"]["epoch"]
            if epoch >= 1:
                proc.send_signal(signal.SIGKILL)
                killed_after = epoch + 1
                break
        time.sleep(0.05)
    proc.wait()
    assert killed_after is not None and killed_after < 6, "the run ended before it could be interrupted"
    assert not (c / "report.json").exists()
    fer_cli("train", "--data", str(tiny_folder), "--out", str(c), "--resume", *TINY)
    assert final_metrics(c) == final_metrics(a)


def test_resume_goes_on_with_the_runs_own_configuration_and_refuses_to_change_its_network(
    tiny_folder, tmp_path, mlflow_store
):
    out, data = tmp_path / "run", ["--data", str(tiny_folder), "--progress", "false", "--register", "false"]
    narrow = ["--model.stem-channels", "8", "--model.widths", "8,8,8,8"]
    first = fer_cli(
        "train", *data, "--out", str(out), "--epochs", "1", "--batch-size", "16", "--val", "public", *narrow
    )
    params = [line.split(" parameters")[0] for line in first.stderr.splitlines() if " parameters |" in line]
    # continued with one flag: the network, batch and validation faces come from the checkpoint
    more = fer_cli("train", *data, "--out", str(out), "--resume", "--epochs", "2")
    assert "with its saved configuration" in more.stderr and "changed by flags: epochs: 1 -> 2" in more.stderr
    assert [line.split(" parameters")[0] for line in more.stderr.splitlines() if " parameters |" in line] == params
    assert torch.load(out / "last.pt", weights_only=True)["state"]["epoch"] == 1  # two epochs done
    command = json.loads((out / "card.json").read_text())["command"]  # the run's whole command, not the resume's
    assert command.startswith("python -m fer train --recipe paper ") and "--resume" not in command
    for flag in ("--epochs 2", "--batch-size 16", "--val public", "--model.widths 8,8,8,8"):
        assert flag in command, (flag, command)
    refused = fer_cli(
        "train", *data, "--out", str(out), "--resume", "--epochs", "3", "--model.widths", "16,16,16,16", check=False
    )
    assert refused.returncode != 0 and "--model.widths 16,16,16,16 (the run has 8,8,8,8)" in refused.stderr
    assert torch.load(out / "last.pt", weights_only=True)["state"]["epoch"] == 1  # nothing lost
    (out / "last.pt").write_bytes(b"precious")
    unreadable = fer_cli("train", *data, "--out", str(out), "--resume", check=False)
    assert unreadable.returncode != 0 and "is not a checkpoint of this program" in unreadable.stderr
    assert (out / "last.pt").read_bytes() == b"precious"


def test_two_trainings_started_at_once_on_a_fresh_store_both_finish(tiny_folder, tmp_path, monkeypatch):
    # the first use of a new sqlite store migrates it; two processes migrating it at once used to fail one of them
    db = tmp_path / "fresh" / "mlflow.db"
    db.parent.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": f"sqlite:///{db}"}
    flags = ["--data", str(tiny_folder), *TINY[:1], "1", *TINY[2:]]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "fer", "train", *flags, "--seed", str(i), "--out", str(tmp_path / f"r{i}")],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{db}")
    assert len(client.search_runs([client.get_experiment_by_name("fer-training").experiment_id])) == 2


def test_existing_run_is_not_overwritten(tiny_folder, tmp_path, mlflow_store):
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.pt").write_bytes(b"precious")
    proc = fer_cli("train", "--data", str(tiny_folder), "--out", str(out), *TINY, check=False)
    assert proc.returncode != 0 and "pass --resume" in proc.stderr
    assert (out / "last.pt").read_bytes() == b"precious"


def test_resume_without_checkpoint_says_so(tiny_folder, tmp_path, mlflow_store):
    proc = fer_cli("train", "--data", str(tiny_folder), "--out", str(tmp_path / "none"), "--resume", *TINY, check=False)
    assert proc.returncode != 0 and "no checkpoint" in proc.stderr


def test_torchrun_two_processes_on_cpu(tiny_folder, tmp_path, mlflow_store):
    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "fer",
        "train",
        "--data",
        str(tiny_folder),
        "--out",
        str(out),
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--progress",
        "false",
        "--register",
        "false",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "2 process(es)" in proc.stderr
    assert proc.stderr.count("epoch   2/2") == 1  # only rank 0 reports
    import mlflow

    runs = mlflow.search_runs(experiment_names=["fer-training"])
    assert len(runs) == 1  # only rank 0 logs
    assert int(runs.iloc[0]["metrics.epochs_run"]) == 2
    assert (out / "last.pt").exists() and (out / "best.pt").exists()


def test_cosine_schedule_falls_from_lr_towards_zero():
    lrs = [cosine_lr(0.1, e, 10) for e in range(10)]
    assert lrs[0] == 0.1 and abs(lrs[5] - 0.05) < 1e-12 and 0 < lrs[-1] < 0.003
    assert all(a > b for a, b in zip(lrs, lrs[1:]))


def test_production_recipe_fits_the_limits():
    cfg = recipe("production")
    assert cfg.recipe == "production" and cfg.schedule == "cosine" and cfg.model.flip_tta
    assert count_parameters(create_model(cfg.model)) <= 2_000_000


def test_production_recipe_trains_with_a_cosine_schedule(tiny_folder, tmp_path, mlflow_store):
    out = tmp_path / "prod"
    flags = ["--epochs", "3", "--batch-size", "16", "--progress", "false", "--register", "false", "--val", "public"]
    proc = fer_cli("train", "--recipe", "production", "--data", str(tiny_folder), "--out", str(out), *flags)
    card = json.loads((out / "card.json").read_text())
    assert card["recipe"] == "production" and card["config"]["autocast"] == "auto"
    assert ("precision: bfloat16 autocast" if native_bf16(torch.device("cpu")) else "precision: float32") in proc.stderr
    assert card["config"]["model"]["widths"] == [32, 64, 128, 256]
    lrs = [row["lr"] for row in torch.load(out / "last.pt", weights_only=True)["state"]["history"]]
    assert lrs == pytest.approx([cosine_lr(1e-3, e, 3) for e in range(3)])

    # bundled, it carries its speed and training time, and its card's accuracy is what evaluate measures
    # (with the test-time augmentation changed, as one chosen on validation would be)
    fer_cli("bundle", str(out), "--data", str(tiny_folder), "--to", str(tmp_path / "bundle"), "--tta", "shift1")
    bundled = json.loads((tmp_path / "bundle" / "card.json").read_text())
    assert bundled["recipe"] == "production" and bundled["config"]["model"]["tta_shift"] == 1
    assert bundled["command"] == (
        f"python -m fer train --recipe production --data {tiny_folder} --out {out} --val public --epochs 3 "
        "--batch-size 16 --register false --progress false --model.flip-tta false --model.tta-shift 1"
    )
    calibration = bundled["calibration"]
    assert calibration["temperature"] > 0 and 0 <= calibration["test_ece_after"] <= 1
    assert (tmp_path / "bundle" / "reliability.png").stat().st_size > 0
    assert bundled["ms_per_face"] > 0 and bundled["training_seconds"] > 0 and bundled["epochs_run"] == 3
    model = str(tmp_path / "bundle" / "model.pt")
    measured = json.loads(fer_cli("evaluate", "--data", str(tiny_folder), "--model", model, "--json").stdout)
    assert measured["accuracy"] == pytest.approx(bundled["publictest"]["accuracy"], abs=1e-6)


@pytest.mark.parametrize("native", [True, False])
def test_autocast_auto_takes_bf16_only_where_the_device_computes_it_natively(monkeypatch, native):
    monkeypatch.setattr(train, "native_bf16", lambda device: native)
    cpu = torch.device("cpu")
    assert autocast_bf16("off", cpu) == (False, None)
    bf16, note = autocast_bf16("auto", cpu)
    assert bf16 is native and note.startswith("precision: " + ("bfloat16" if native else "float32"))
    bf16, note = autocast_bf16("bf16", cpu)  # asked for explicitly: honoured, with a warning where it is emulated
    assert bf16 is True and (note is None if native else "without native bfloat16" in note)


@pytest.mark.parametrize("capability", ["AVX2", "AVX512"])
def test_channels_last_stays_off_where_onednn_crashes_on_a_narrow_strided_1x1_convolution(monkeypatch, capability):
    from fer.model import ModelConfig

    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    cpu = torch.device("cpu")
    narrow = create_model(ModelConfig(stem_channels=4, widths=(8, 8, 8, 8)))  # a 1x1 shortcut of stride 2 over 4
    assert channels_last_choice("auto", create_model(recipe("paper").model), cpu) == (True, None)
    assert channels_last_choice("off", narrow, cpu) == (False, None)
    use, note = channels_last_choice("auto", narrow, cpu)
    if capability == "AVX512":
        assert (use, note) == (True, None) and channels_last_choice("on", narrow, cpu) == (True, None)
    else:
        assert use is False and "layer modules_.0.shortcut.0 is a strided 1x1 convolution over 4 channels" in note
        with pytest.raises(SystemExit, match="--channels-last on: layer modules_.0.shortcut.0"):
            channels_last_choice("on", narrow, cpu)
    with pytest.raises(SystemExit, match="unknown --channels-last 'yes'"):
        channels_last_choice("yes", narrow, cpu)


def test_a_narrow_network_trains_on_one_thread_on_this_cpu(tmp_path):
    # on an AVX2 CPU a channels-last weight gradient of this network's first shortcut killed the process (SIGSEGV)
    script = """
import sys
import torch
from fer.data.augment import AugmentConfig
from fer.training.config import TrainConfig
from fer.model import ModelConfig
from fer.training.trainer import Trainer
cfg = TrainConfig(epochs=1, batch_size=16, threads=1, out=sys.argv[1], progress=False)
cfg.model, cfg.augment = ModelConfig(stem_channels=4, widths=(8, 8, 8, 8)), AugmentConfig(0, 0, 0, 0, 0)
x, y = torch.randint(0, 256, (32, 48, 48), dtype=torch.uint8).numpy(), torch.arange(32).remainder(7).numpy()
print(Trainer(cfg).fit(x, y, x, y).epoch)
"""
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-1] == "0"


def test_unknown_schedule_is_named(tiny_folder, tmp_path, mlflow_store):
    proc = fer_cli(
        "train", "--data", str(tiny_folder), "--out", str(tmp_path / "x"), "--schedule", "step", *TINY, check=False
    )
    assert proc.returncode != 0 and "unknown --schedule 'step'" in proc.stderr


def test_train_warns_when_its_training_faces_are_blurred(tmp_path, mlflow_store):
    from PIL import Image, ImageFilter

    from tests.conftest import write_folder

    data = write_folder(tmp_path / "fer", n_train=4, n_test=2)
    matched = fer_cli("train", "--data", str(data), "--out", str(tmp_path / "a"), *TINY[:1], "1", *TINY[2:])
    assert "training faces are much" not in matched.stderr
    for path in (data / "train").rglob("*.png"):
        Image.open(path).filter(ImageFilter.GaussianBlur(3)).save(path)
    damaged = fer_cli("train", "--data", str(data), "--out", str(tmp_path / "b"), *TINY[:1], "1", *TINY[2:])
    assert "training faces are much softer (blurred?) than the PublicTest faces" in damaged.stderr


def test_sqrt_class_weights_favour_the_rare_class_and_average_one():
    from fer.training.trainer import sqrt_inverse_weights

    y = torch.tensor([0] * 100 + [1] * 4 + [2] * 25)
    w = sqrt_inverse_weights(y, 4)
    assert w[1] / w[0] == pytest.approx(5.0) and w[2] / w[0] == pytest.approx(2.0)
    assert w[y].mean().item() == pytest.approx(1.0) and w[3] == 0  # class 3 is absent


def test_mixup_and_class_weights_train_and_are_recorded(tiny_folder, tmp_path, mlflow_store):
    out = tmp_path / "levers"
    fer_cli("train", "--data", str(tiny_folder), "--out", str(out), *TINY, "--mixup", "0.2", "--class-weights", "sqrt")
    history = torch.load(out / "last.pt", weights_only=True)["state"]["history"]
    assert all(torch.isfinite(torch.tensor(row["train_loss"])) for row in history)
    card = json.loads((out / "card.json").read_text())
    assert card["config"]["mixup"] == 0.2 and card["config"]["class_weights"] == "sqrt"
    assert "--class-weights sqrt" in card["command"] and "--mixup 0.2" in card["command"]


def test_unknown_class_weights_are_named(tiny_folder, tmp_path, mlflow_store):
    proc = fer_cli(
        "train",
        "--data",
        str(tiny_folder),
        "--out",
        str(tmp_path / "x"),
        *TINY,
        "--class-weights",
        "inverse",
        check=False,
    )
    assert proc.returncode != 0 and "unknown --class-weights 'inverse'" in proc.stderr


def test_bundle_of_several_runs_is_one_ensemble_selected_on_their_shared_split(tiny_folder, tmp_path, mlflow_store):
    flags = ["--epochs", "1", "--batch-size", "16", "--progress", "false", "--register", "false"]
    runs = []
    for seed, split_seed in ((0, "0"), (1, "0"), (2, "-1")):  # the third keeps its own split (seed 2)
        out = tmp_path / f"s{seed}"
        fer_in_process(
            "train",
            "--data",
            str(tiny_folder),
            "--out",
            str(out),
            "--seed",
            str(seed),
            "--split-seed",
            split_seed,
            *flags,
        )
        runs.append(str(out))
    cards = [json.loads((Path(r) / "card.json").read_text()) for r in runs]
    assert cards[0]["validation"]["n"] == cards[1]["validation"]["n"] == 56  # 20% of 40 per class, same split

    to = tmp_path / "ensemble"
    out = fer_in_process("bundle", *runs[:2], "--data", str(tiny_folder), "--to", str(to)).stdout
    assert "x2" in out and "1+1 epochs" in out
    card = json.loads((to / "card.json").read_text())
    assert card["params"] == 2 * cards[0]["params"] and card["config"]["model"]["members"] == 2
    assert [m["seed"] for m in card["members"]] == [0, 1] and card["epochs_run"] == "1+1"
    assert card["command"].splitlines()[-1] == f"python -m fer bundle {runs[0]} {runs[1]}"
    assert 0 <= card["validation"]["accuracy"] <= 1 and card["calibration"]["temperature"] > 0
    measured = json.loads(
        fer_in_process("evaluate", "--data", str(tiny_folder), "--model", str(to / "model.pt"), "--json").stdout
    )
    assert measured["accuracy"] == pytest.approx(card["publictest"]["accuracy"], abs=1e-6)

    refused = fer_in_process(
        "bundle", runs[0], runs[2], "--data", str(tiny_folder), "--to", str(tmp_path / "x"), check=False
    )
    assert refused.returncode != 0 and "another validation split" in refused.stderr
    assert "(val 'split', fraction 0.2, split seed 2) than" in refused.stderr and "split seed 0)" in refused.stderr
    assert not (tmp_path / "x").exists()

    # the same pair teaches a student on their split, and a student on another split is refused
    work = tmp_path / "work"  # the student takes the default --out, runs/<recipe> under the working directory
    work.mkdir()
    student = work / "runs" / "paper"
    teacher = f"{runs[0]},{runs[1]}"
    taught = fer_in_process("train", "--data", str(tiny_folder), *flags, "--distill", teacher, "--split-seed", "0",
                     "--seed", "3", cwd=work)  # fmt: skip
    assert f"distilling from {runs[0]}, {runs[1]} (2 network(s))" in taught.stderr
    assert sorted(p.name for p in work.iterdir()) == ["runs"]  # the teacher's logits went to the run folder
    card = json.loads((student / "card.json").read_text())
    assert card["config"]["distill"] == teacher and f"--distill {teacher}" in card["command"]
    # resumed, the student reads its teacher's logits back; a teacher trained further is asked again
    kept = student / "teacher_logits.pt"
    resumed = fer_in_process("train", "--out", str(student), "--resume", "--epochs", "2")
    assert f"the teacher's logits read back from {kept}" in resumed.stderr and "distilling from" not in resumed.stderr
    os.utime(Path(runs[0]) / "last.pt", ns=(1, 1))
    anew = fer_in_process("train", "--out", str(student), "--resume", "--epochs", "3")
    assert "distilling from" in anew.stderr and "read back" not in anew.stderr
    leak = fer_in_process("train", "--data", str(tiny_folder), "--out", str(tmp_path / "leak"), *flags,
                          "--distill", teacher, "--seed", "3", check=False)  # fmt: skip
    assert leak.returncode != 0 and "the teacher was selected on another validation split" in leak.stderr
    assert "Pass --split-seed 0" in leak.stderr


def one_epoch_checkpoint(path: Path, config: dict, net: torch.nn.Module) -> None:
    """A checkpoint as `fer train` leaves one after an epoch (best validation accuracy 0.5), holding `net`."""
    from fer.training.trainer import RunState

    state = RunState(epoch=0, best_value=0.5, best_epoch=0, history=[{"epoch": 0, "epoch_seconds": 1.0}])
    torch.save({"config": config, "model": net.state_dict(), "best_model": net.state_dict(), "state": state.__dict__},
               path)  # fmt: skip


def test_bundle_card_shows_a_checkpoints_config_as_it_reads_today(tmp_path):
    # a run trained before an option was retired: its card must not show that option as if it still applied
    from fer.training.config import TrainConfig
    from fer.training.runs import load_runs

    old = recipe("production").to_dict() | {"match_blur": True}
    net = create_model(recipe("production").model)
    one_epoch_checkpoint(tmp_path / "last.pt", old, net)
    _, info = load_runs(tmp_path)
    assert "match_blur" not in info["config"]
    assert info["config"] == TrainConfig.from_dict(old).to_dict() and info["validation"] == {"accuracy": 0.5}


@pytest.mark.parametrize("name", BUNDLED_NAMES)
def test_a_bundled_cards_commands_run_as_written(name):
    """Every line of a bundled card's training command is one fer's own parser takes, and so is the command
    written for a run fine-tuned from an ensemble (three networks, eight emotions: neither has a flag)."""
    import shlex

    from fer.cli import _parser
    from fer.inference.weights import bundled_card
    from fer.training.config import command_for

    cfg = recipe("ferplus")
    cfg.model.members, cfg.model.num_classes = 3, 8  # what `fer train` takes from --init and --labels
    lines = [*bundled_card(f"bundled:{name}")["command"].splitlines(), command_for(cfg.to_dict())]
    parser = _parser()
    for line in lines:
        words = shlex.split(line)
        assert words[:3] == ["python", "-m", "fer"], line
        parser.parse_args(words[3:])  # SystemExit, failing the test, on a flag fer does not take


def test_a_distilled_runs_card_trains_its_teachers_first(tmp_path, monkeypatch):
    # the bundled card's command must rebuild the model from nothing: the teachers' commands come before the student's
    from fer.training.config import command_for
    from fer.training.runs import load_runs

    monkeypatch.chdir(tmp_path)  # --distill names run folders as the student's working directory saw them
    net = create_model(recipe("production").model)
    configs = {}
    for name, seed, distill in (("a", 0, ""), ("b", 1, "runs/a"), ("student", 2, "runs/a, runs/b,runs/gone")):
        cfg = recipe("production")
        cfg.seed, cfg.split_seed, cfg.distill = seed, 0, distill
        configs[name] = cfg.to_dict()
        Path("runs", name).mkdir(parents=True)
        one_epoch_checkpoint(Path("runs", name, "last.pt"), configs[name], net)
    _, info = load_runs("runs/student")
    assert info["command"].splitlines() == [
        command_for(configs["a"]),  # once, though both b and the student learned from it
        command_for(configs["b"]),
        "# the teacher runs/gone: its checkpoint is not on this machine, so its command is not known",
        command_for(configs["student"]),
    ]
    assert "--distill runs/a" in info["command"].splitlines()[1]


def test_distillation_teaches_the_teachers_answers_not_the_labels(tmp_path):
    # a teacher that is sure every face shows the next emotion: a student that only listens to it learns that
    from fer.data.augment import AugmentConfig
    from fer.model import ModelConfig
    from fer.training.config import TrainConfig
    from fer.training.trainer import Trainer

    g = torch.Generator().manual_seed(0)
    y = torch.arange(7).repeat(16)
    means = torch.rand(7, 1, 48, 48, generator=g) * 255  # one distinct mean face per class, easy to learn
    x = (means[y] + torch.randn(len(y), 1, 48, 48, generator=g) * 20).clamp(0, 255).to(torch.uint8)[:, 0]
    lie = (y + 1) % 7
    teacher = torch.nn.functional.one_hot(lie, 7).float() * 10
    cfg = TrainConfig(epochs=10, batch_size=16, lr=3e-3, distill="teacher", distill_weight=1.0, out=str(tmp_path))
    cfg.model, cfg.augment, cfg.progress = (
        ModelConfig(stem_channels=4, widths=(8, 8, 8, 8)),
        AugmentConfig(0, 0, 0, 0, 0),
        False,
    )
    trainer = Trainer(cfg)
    trainer.fit(x.numpy(), y.numpy(), x.numpy(), lie.numpy(), teacher_logits=teacher)  # kept: best at the teacher's
    trainer.model.eval()
    with torch.no_grad():
        pred = trainer.model(x[:, None].float() / 255).argmax(1)
    assert (pred == lie).float().mean() > 0.8 and (pred == y).float().mean() < 0.1


def test_distillation_loss_is_zero_when_student_agrees_and_has_the_scale_of_cross_entropy(tmp_path):
    from fer.training.config import TrainConfig
    from fer.training.trainer import Trainer

    trainer = Trainer(TrainConfig(out=str(tmp_path), distill="t", distill_temperature=4.0))
    logits = torch.randn(5, 7)
    assert trainer._distill_loss(logits, logits).item() == pytest.approx(0.0, abs=1e-6)
    student = logits.clone().requires_grad_()
    trainer._distill_loss(student, logits + torch.randn(5, 7)).backward()
    assert student.grad.abs().max() > 1e-3  # T² keeps the gradient from vanishing at T=4
