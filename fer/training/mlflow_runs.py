"""MLflow logging of a training run: config, per-epoch metrics, figures, the model.

Where runs go: `MLFLOW_TRACKING_URI` when set, else MLflow's own default
(`sqlite:///mlflow.db` in the working directory), so `mlflow ui` started in
the same folder shows them. Only rank 0 of a distributed run creates one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

import mlflow
import numpy as np

from fer import REGISTERED_MODEL
from fer.evaluation.metrics import Metrics
from fer.inference.mlflow_model import CARD_ARTIFACT, log_model
from fer.inference.weights import save_weights
from fer.training.config import TrainConfig, command_for

EXPERIMENT = "fer-training"


@contextlib.contextmanager
def store_lock():
    """Held while a process opens the tracking store: MLflow creates (migrates) a new sqlite store on first use,
    and two trainings started at once on a fresh `mlflow.db` would both migrate it, the second failing with
    'duplicate column name'. One lock file per store, in the temporary folder; a no-op for other stores."""
    uri = mlflow.get_tracking_uri()
    try:
        import fcntl
    except ImportError:  # not POSIX
        fcntl = None
    if fcntl is None or not uri.startswith("sqlite:///"):
        yield
        return
    db = os.path.abspath(uri.removeprefix("sqlite:///"))
    lock = Path(tempfile.gettempdir()) / f"fer-mlflow-{hashlib.sha1(db.encode()).hexdigest()[:16]}.lock"
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class RunTracker:
    def __init__(self, cfg: TrainConfig, run_id: str | None = None):
        self.cfg = cfg
        with store_lock():
            mlflow.set_experiment(EXPERIMENT)
        if run_id:
            self.run = mlflow.start_run(run_id=run_id)
        else:
            self.run = mlflow.start_run(run_name=f"{cfg.recipe}-{cfg.model.name}")
        self.run_id = self.run.info.run_id

    def log_start(self, n_params: int, data_digest: str, n_train: int, n_val: int, precision: str = "") -> None:
        if precision:  # a tag, set again on every resume: the machine a run resumes on may differ
            mlflow.set_tag("precision", precision)
        client = mlflow.tracking.MlflowClient()
        existing = client.get_run(self.run_id).data.params
        if existing:  # a resumed run already carries them; MLflow refuses to overwrite params
            return
        params = {k: (json.dumps(v) if isinstance(v, (list, tuple)) else v) for k, v in self.cfg.flat().items()}
        params.update(n_params=n_params, data_digest=data_digest[:16], n_train=n_train, n_val=n_val)
        mlflow.log_params(params)
        mlflow.set_tags(
            {"recipe": self.cfg.recipe, "model": self.cfg.model.name, "classes": ",".join(self.cfg.model.classes)}
        )

    def log_epoch(self, row: dict, step: int) -> None:
        mlflow.log_metrics({k: float(v) for k, v in row.items() if k != "epoch"}, step=step)

    def log_final(
        self, model, state, val: Metrics, test: Metrics | None, out: Path, data_digest: str, calibration: dict
    ) -> dict:
        from fer import plots

        out.mkdir(parents=True, exist_ok=True)
        final = {
            "best_epoch": state.best_epoch + 1,
            "epochs_run": state.epoch + 1,
            "best_val_acc": val.accuracy,
            "best_val_loss": val.loss,
        }
        if test is not None:
            final.update(test_acc=test.accuracy, test_loss=test.loss)
            final.update({f"test_acc_{k}": v for k, v in test.per_class.items()})
        final.update({k: v for k, v in calibration.items() if isinstance(v, float)})  # temperature, *_ece_*
        mlflow.log_metrics(final)

        shown = test if test is not None else val
        split = "PublicTest" if test is not None else "validation"
        figs = {
            "training_curves.png": plots.training_curves(state.history),
            f"confusion_matrix_{split}.png": plots.confusion_matrix(
                shown.confusion, shown.classes, f"{split}, accuracy {shown.accuracy:.2%}"
            ),
        }
        if "test_reliability_before" in calibration:
            figs["reliability_PublicTest.png"] = plots.reliability_diagram(calibration)
        for name, fig in figs.items():
            fig.savefig(out / name, dpi=110, bbox_inches="tight")
            mlflow.log_artifact(str(out / name), artifact_path="figures")
        report = {
            "split": split,
            "accuracy": shown.accuracy,
            "n": shown.n,
            "per_class": shown.report(),
            "confusion_matrix": shown.confusion.tolist(),
            "labels": list(shown.classes),
            "validation": val.to_dict(),
        }
        (out / "report.json").write_text(json.dumps(report, indent=2))
        mlflow.log_artifact(str(out / "report.json"))

        card = model_card(self.cfg, state, val, test, data_digest, sum(p.numel() for p in model.parameters()))
        card["calibration"] = calibration_summary(calibration)
        (out / "card.json").write_text(json.dumps(card, indent=2))
        save_weights(model, out / "best.pt", card)
        weights_dir = CARD_ARTIFACT.rsplit("/", 1)[0]  # the card beside the weights, where the registry reads it
        mlflow.log_artifact(str(out / "best.pt"), artifact_path=weights_dir)
        mlflow.log_artifact(str(out / "card.json"), artifact_path=weights_dir)

        result = log_model(model, registered_name=REGISTERED_MODEL if self.cfg.register else None, card=card)
        mlflow.end_run()
        return result


def calibration_summary(calibration: dict) -> dict:
    """What a model card keeps of fer.evaluation.calibration.calibrate's report: the figures, not the per-bin rows."""
    return {k: v for k, v in calibration.items() if "reliability" not in k}


def model_card(cfg: TrainConfig, state, val: Metrics, test: Metrics | None, digest: str, params: int) -> dict:
    card = {
        "name": cfg.model.name,
        "recipe": cfg.recipe,
        "params": params,
        "epochs_run": state.epoch + 1,
        "best_epoch": state.best_epoch + 1,
        "stopped_early": state.stopped_early,
        "selection": f"best {cfg.select} on "
        + ("PublicTest" if cfg.val == "public" else f"{cfg.val_fraction:.0%} of Training"),
        "validation": {"accuracy": val.accuracy, "n": val.n},
        "labels": list(cfg.model.classes),
        "targets": cfg.labels,  # what it learned: FER2013's labels or the FER+ crowd's votes
        "data_sha256": digest,
        "command": command_for(cfg.to_dict()),  # the whole command, also after `fer train --resume --threads 2`
        "config": cfg.to_dict(),
    }
    if test is not None:
        card["publictest"] = {
            "accuracy": test.accuracy,
            "n": test.n,
            "per_class": test.per_class,
            "confusion_matrix": test.confusion.tolist(),
        }
        if not np.isnan(test.kl):
            card["publictest"].update(against="the FER+ crowd's majority", mean_kl=test.kl)
    return card
