"""The registry package against a temporary sqlite store and a real `mlflow server` on 127.0.0.1.

OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/test_registry.py

Models are logged untrained (a seeded create_model is enough to tell versions apart); where a test only
moves aliases and stages around, its versions are registry entries without a model behind them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import mlflow
import pytest
import torch
from mlflow import MlflowClient

from fer import EMOTIONS, LABELS, REGISTERED_MODEL
from fer.inference.mlflow_model import CARD_ARTIFACT, log_model, pip_requirements
from fer.inference.weights import BUNDLED_NAMES, bundled_card, bundled_name, bundled_path, load_model
from fer.model import count_parameters, create_model
from registry import ALIAS, HISTORY_TAG, Registry, RegistryError, refuse_pickle
from registry.__main__ import COMMANDS, main, ui_command
from tests.conftest import ROOT, free_port, tracking_at

NO_PRODUCTION = (
    "no production model: run `python -m registry promote VERSION` or set the alias 'production' in the MLflow UI"
)


@pytest.fixture(params=["sqlite", "server"])
def store(request, monkeypatch) -> str:
    """The tracking URI of an empty store of either kind, also set as the process's MLflow default."""
    if request.param == "sqlite":
        yield request.getfixturevalue("mlflow_store")
        return
    yield from tracking_at(request.getfixturevalue("mlflow_server"), monkeypatch)


def log_run(seed: int, test_acc: float, pickled: bool = False) -> tuple[str, torch.nn.Module]:
    """A run shaped like one of `fer train`: test metrics, recipe tag, n_params, and a model named "model"."""
    torch.manual_seed(seed)
    model = create_model().eval()
    with mlflow.start_run() as run:
        mlflow.set_tag("recipe", "paper")
        mlflow.log_param("n_params", count_parameters(model))
        mlflow.log_metrics({"test_acc": test_acc, "best_val_acc": test_acc + 0.01})
        mlflow.log_metrics({f"test_acc_{k}": i / 10 for i, k in enumerate(LABELS)})
        if pickled:  # what MLflow wrote before pt2 became the default; the product must never unpickle it
            mlflow.pytorch.log_model(
                model, name="model", serialization_format="pickle", pip_requirements=pip_requirements()
            )
        else:
            log_model(model, registered_name=None, card={})
    return run.info.run_id, model


def fake_versions(uri: str, tmp_path, n: int) -> MlflowClient:
    """n versions of fer-emotion with PublicTest accuracy tags and no model behind them: cheap, for alias logic."""
    client = MlflowClient(uri, registry_uri=uri)
    client.create_registered_model(REGISTERED_MODEL)
    for i in range(n):
        client.create_model_version(
            REGISTERED_MODEL, str(tmp_path), tags={"publictest_accuracy": f"{0.5 + i / 10:.4f}"}
        )
    return client


def test_register_promote_rollback_resolve_load_and_bootstrap(store):
    reg = Registry(store)
    assert reg.tracking_uri == store and reg.versions() == []
    with pytest.raises(RegistryError) as e:
        reg.resolve()
    assert str(e.value) == NO_PRODUCTION

    # an empty registry takes the bundled models, the production one as version 1 in production, each tagged from
    # its card and with its bundle's name as an alias
    res = reg.bootstrap()
    card = bundled_card()
    bundles = [n for n in BUNDLED_NAMES if bundled_path(f"bundled:{n}").exists()]
    n = len(bundles)
    assert sorted(reg.versions()[-1]["aliases"]) == sorted([ALIAS, bundled_name()])
    assert (res.version, res.via, res.uri) == (1, "alias production", f"models:/{REGISTERED_MODEL}/1")
    assert res.tags["publictest_accuracy"] == f"{card['publictest']['accuracy']:.4f}"
    assert res.tags["publictest_acc_happy"] == f"{card['publictest']['per_class']['happy']:.4f}"
    assert res.tags["recipe"] == card["recipe"] and res.tags["origin"].startswith("bundled")
    client = MlflowClient(store, registry_uri=store)
    run = client.get_run(reg.versions()[-1]["run_id"])  # newest first: version 1 is the last row
    assert client.get_experiment(run.info.experiment_id).name == "fer-bundled"
    assert run.data.tags["publictest_accuracy"] == res.tags["publictest_accuracy"]
    assert run.data.metrics["test_acc"] == pytest.approx(card["publictest"]["accuracy"])
    # its calibration too: the temperature inside the served graph, the ECE before and after it
    assert res.tags["publictest_ece"] == f"{card['calibration']['test_ece_after']:.4f}"
    assert run.data.metrics["temperature"] == pytest.approx(card["calibration"]["temperature"])
    assert reg.bootstrap() is None and len(reg.versions()) == n  # idempotent
    for version, name in enumerate([bundled_name(), *(b for b in bundles if b != bundled_name())], 1):
        row = next(r for r in reg.versions() if r["version"] == version)
        assert name in row["aliases"] and row["tags"]["origin"] == f"bundled:{name}"

    # version n+1 is promoted and rolled past but never loaded, so the quick pickle format does for it
    (run_a, _), (run_b, model_b) = log_run(1, 0.61, pickled=True), log_run(2, 0.62)
    assert (reg.register(run_a), reg.register(run_b)) == (n + 1, n + 2)
    with pytest.raises(RegistryError, match=f"already version {n + 1}"):
        reg.register(run_a)
    with pytest.raises(RegistryError, match="no run 'nope'"):
        reg.register("nope")

    rows = reg.versions()
    assert [r["version"] for r in rows] == list(range(n + 2, 0, -1))
    assert rows[0]["run_id"] == run_b and rows[0]["publictest_accuracy"] == pytest.approx(0.62)
    assert rows[0]["tags"]["publictest_acc_happy"] == "0.3000" and rows[0]["tags"]["val_accuracy"] == "0.6300"
    assert rows[0]["tags"]["params"] == str(count_parameters(model_b)) and rows[0]["tags"]["recipe"] == "paper"
    assert ALIAS in rows[-1]["aliases"] and rows[0]["aliases"] == [] and rows[0]["stage"] == "None"

    reg.promote(n + 1)
    reg.promote(n + 2)
    res = reg.resolve()
    assert (res.version, res.via) == (n + 2, "alias production") and res.tags["publictest_accuracy"] == "0.6200"
    assert json.loads(client.get_registered_model(REGISTERED_MODEL).tags[HISTORY_TAG]) == [1, n + 1, n + 2]

    # the registered model serves without unpickling and answers like the model that was logged
    served = reg.load(res)
    x = torch.randn(3, 1, 48, 48)
    with torch.no_grad():
        assert torch.allclose(served(x), model_b(x), atol=1e-4)

    assert reg.rollback() == n + 1 and reg.resolve().version == n + 1
    assert reg.rollback() == 1 and reg.resolve().version == 1
    bundled, _ = load_model("bundled")
    with torch.no_grad():
        assert torch.allclose(reg.load(1)(x), bundled(x), atol=1e-4)
    with pytest.raises(RegistryError, match="cannot roll back: no version of fer-emotion held 'production' before"):
        reg.rollback()


def test_a_run_registered_later_is_described_by_the_card_it_logged(mlflow_store):
    """`python -m registry register RUN` tags the version from the card `fer train` logged beside the weights: a
    FER+ run says it was scored against the crowd's majority, on how many faces, and reads 8 emotions. A run
    without that card is described from its metrics, params and tags, still as scored against the crowd."""
    torch.manual_seed(0)
    model = create_model(num_classes=len(EMOTIONS)).eval()
    per_class = {k: 0.5 for k in EMOTIONS}
    card = {
        "recipe": "ferplus",
        "params": count_parameters(model),
        "labels": list(EMOTIONS),
        "targets": "ferplus",
        "publictest": {"accuracy": 0.85, "n": 3416, "per_class": per_class, "against": "the FER+ crowd's majority"},
    }
    runs = []
    for with_card in (True, False):
        with mlflow.start_run() as run:
            mlflow.set_tags({"recipe": "ferplus", "classes": ",".join(EMOTIONS)})
            mlflow.log_params({"labels": "ferplus", "n_params": count_parameters(model)})
            mlflow.log_metrics({"test_acc": 0.85, **{f"test_acc_{k}": v for k, v in per_class.items()}})
            if with_card:
                mlflow.log_dict(card, CARD_ARTIFACT)  # where `fer train` logs it
            log_model(model, registered_name=None, card={})
        runs.append(run.info.run_id)
    reg = Registry(mlflow_store)
    versions = [reg.register(r) for r in runs]
    tags = {row["version"]: row["tags"] for row in reg.versions()}
    carded, bare = tags[versions[0]], tags[versions[1]]
    assert carded["publictest_against"] == bare["publictest_against"] == "the FER+ crowd's majority"
    assert carded["publictest_faces"] == "3416" and "publictest_faces" not in bare  # only the card knows it
    assert carded["classes"] == bare["classes"] == ",".join(EMOTIONS)
    assert carded["targets"] == bare["targets"] == "ferplus"


def test_legacy_stage_alias_precedence_and_history_after_ui_edits(mlflow_store, tmp_path):
    client = fake_versions(mlflow_store, tmp_path, 3)
    reg = Registry(mlflow_store)
    with pytest.raises(RegistryError, match="nothing is in production"):
        reg.rollback()
    # a registry run the MLflow 2 way: the newest version in stage Production serves
    for v in (1, 2):
        client.transition_model_version_stage(REGISTERED_MODEL, str(v), "Production")
    res = reg.resolve()
    assert (res.version, res.via, res.uri) == (2, "stage Production", f"models:/{REGISTERED_MODEL}/2")
    assert [r["stage"] for r in reg.versions()] == ["None", "Production", "Production"]
    # the alias wins over stages; rolling back returns to what the stage served
    reg.promote(3)
    assert (reg.resolve().version, reg.resolve().via) == (3, "alias production")
    assert reg.rollback() == 2
    # someone moves the alias in the UI: rollback returns to that holder's predecessor, which is the UI's choice
    client.set_registered_model_alias(REGISTERED_MODEL, ALIAS, "1")
    reg.promote(3)
    assert reg.rollback() == 1
    with pytest.raises(RegistryError, match=r"fer-emotion has no version 9 \(versions: 1, 2, 3;"):
        reg.promote(9)


def test_a_pickled_model_is_refused(mlflow_store, monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", raising=False)
    refuse_pickle()
    assert os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"
    monkeypatch.delenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION")  # undone by monkeypatch's bookkeeping either way

    run_id, _ = log_run(3, 0.5, pickled=True)
    reg = Registry()  # MLFLOW_TRACKING_URI from the fixture
    assert reg.tracking_uri == mlflow_store
    reg.promote(reg.register(run_id))
    with pytest.raises(RegistryError, match="not stored in the pt2 .* pickled models are refused"):
        reg.load(reg.resolve())
    with pytest.raises(RegistryError, match="no version 2"):
        reg.load(2)


def registry_cli(*args: str, uri: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "registry", "--tracking-uri", uri, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli(mlflow_store, tmp_path, capsys):
    proc = registry_cli("--help", uri=mlflow_store)
    assert proc.returncode == 0
    for command in COMMANDS:
        assert f"    {command} " in proc.stdout, command

    # errors: one line on stderr, exit code 2, no traceback; also from a real process
    proc = registry_cli("resolve", uri=mlflow_store)
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", f"error: {NO_PRODUCTION}\n")

    assert main(["--tracking-uri", mlflow_store, "list"]) == 0
    assert "no versions of fer-emotion yet" in capsys.readouterr().out

    fake_versions(mlflow_store, tmp_path, 2)
    assert main(["--tracking-uri", mlflow_store, "promote", "1"]) == 0
    assert main(["--tracking-uri", mlflow_store, "promote", "2"]) == 0
    capsys.readouterr()
    assert main(["--tracking-uri", mlflow_store, "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["version", "aliases", "stage", "PublicTest", "created"]
    assert lines[1].split()[:4] == ["2", "production", "None", "60.00%"]
    assert lines[2].split()[:4] == ["1", "-", "None", "50.00%"] and lines[2].endswith("UTC")

    assert main(["resolve", "--tracking-uri", mlflow_store]) == 0  # the option also works after the command
    assert capsys.readouterr().out.splitlines() == [
        "name     fer-emotion",
        "version  2",
        "via      alias production",
        "uri      models:/fer-emotion/2",
    ]
    assert main(["--tracking-uri", mlflow_store, "rollback"]) == 0
    assert capsys.readouterr().out == "fer-emotion: production moved from version 2 back to version 1\n"
    assert main(["--tracking-uri", mlflow_store, "promote", "7"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: fer-emotion has no version 7") and err.count("\n") == 1
    assert main(["--tracking-uri", mlflow_store, "bootstrap"]) == 0
    assert "already has versions; nothing to do" in capsys.readouterr().out


def test_ui_serves_the_same_store(mlflow_store, tmp_path):
    with pytest.raises(RegistryError, match=r"already an MLflow server: open http://127.0.0.1:5000 in") as e:
        ui_command("http://me:secret@127.0.0.1:5000", "127.0.0.1", 5000)
    assert "secret" not in str(e.value)
    fake_versions(mlflow_store, tmp_path, 2)
    Registry(mlflow_store).promote(2)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "registry", "--tracking-uri", mlflow_store, "ui", "--port", str(port)],
        cwd=tmp_path,  # not the store's folder: the UI must not fall back to ./mlflow.db
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "ui.log", "w"),
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/api/2.0/mlflow/registered-models/get?name={REGISTERED_MODEL}"
        deadline = time.time() + 90
        while True:
            try:
                body = json.loads(urllib.request.urlopen(url, timeout=2).read())
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "ui.log").read_text()[-3000:]
                assert time.time() < deadline, "the MLflow UI did not come up in 90 s"
                time.sleep(0.5)
        aliases = {a["alias"]: a["version"] for a in body["registered_model"]["aliases"]}
        assert aliases == {ALIAS: "2"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
