"""Training runs land in MLflow: against a temporary sqlite store and a real `mlflow server` on 127.0.0.1."""

import json
import os

import mlflow
import numpy as np
import pytest
import torch

from fer import REGISTERED_MODEL
from fer.evaluation.metrics import predict_proba
from fer.inference.weights import load_model
from fer.training.config import validation_split
from tests.conftest import fer_cli, synthetic_faces

ARGS = ["--epochs", "3", "--batch-size", "16", "--progress", "false", "--val", "public"]


def check_run(out, tracking_uri):
    client = mlflow.tracking.MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("fer-training")
    (run,) = client.search_runs([exp.experiment_id])
    params = run.data.params
    assert params["epochs"] == "3" and params["model.name"] == "mini_xception" and params["augment.rotation"] == "10.0"
    assert params["n_params"] == "56951"
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_seconds", "images_per_second"):
        hist = client.get_metric_history(run.info.run_id, key)
        assert sorted(m.step for m in hist) == [1, 2, 3], key
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    figures = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
    assert "report.json" in artifacts
    assert {"figures/training_curves.png", "figures/confusion_matrix_PublicTest.png"} <= figures
    versions = client.search_model_versions(f"name='{REGISTERED_MODEL}'")
    assert len(versions) == 1
    tags = versions[0].tags
    report = json.loads((out / "report.json").read_text())
    assert float(tags["publictest_accuracy"]) == pytest.approx(report["accuracy"], abs=1e-4)
    assert "publictest_acc_happy" in tags
    return versions[0]


def test_training_logs_everything_to_sqlite(tiny_folder, tmp_path, mlflow_store):
    out = tmp_path / "run"
    proc = fer_cli("train", "--data", str(tiny_folder), "--out", str(out), *ARGS)
    assert "Downloading artifacts" not in proc.stderr  # --progress false: no progress bars, MLflow's included
    version = check_run(out, mlflow_store)
    # the registered model loads without unpickling and answers like the saved weights
    os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"
    try:
        served, served_card = load_model(f"models:/{REGISTERED_MODEL}/{version.version}")
    finally:
        del os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"]
    weights, card = load_model(str(out / "best.pt"))
    # `fer evaluate --split val` finds the split the model was selected on, from its card or its MLflow run
    assert validation_split(served_card) == validation_split(card) == ("public", 0.2, 0)
    x, _ = synthetic_faces(3, seed=9)
    assert torch.allclose(predict_proba(served, x, channels_last=False), predict_proba(weights, x), atol=1e-4)
    assert card["publictest"]["accuracy"] == pytest.approx(json.loads((out / "report.json").read_text())["accuracy"])


@pytest.mark.slow
def test_training_logs_to_a_real_mlflow_server(tiny_folder, tmp_path, mlflow_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    out = tmp_path / "run"
    fer_cli("train", "--data", str(tiny_folder), "--out", str(out), *ARGS)
    version = check_run(out, mlflow_server)
    mlflow.set_tracking_uri(mlflow_server)
    try:
        served, _ = load_model(f"models:/{REGISTERED_MODEL}/{version.version}")
    finally:
        mlflow.set_tracking_uri(None)
    assert served(torch.as_tensor(np.zeros((2, 1, 48, 48), np.float32))).shape == (2, 7)
