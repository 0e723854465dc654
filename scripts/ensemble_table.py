"""Which ensemble to ship: validation accuracy of every subset of the runs, with and without flip test-time
augmentation, beside the milliseconds per face each costs as served. Chosen on validation only; PublicTest is
printed as the test figure it is.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/ensemble_table.py runs/production runs/ens-s1 runs/ens-s2

The runs must share the network's shape and the validation split (`fer train --split-seed`), as `fer bundle`
requires. Each run's logits are computed once per augmentation, then averaged per subset, which is what the
stacked network computes (fer.model.stack, tested).
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer import data  # noqa: E402
from fer.bundle import ensemble, load_runs  # noqa: E402
from fer.config import TrainConfig  # noqa: E402
from fer.evaluate import metrics_from_proba, ms_per_face, predict_logits  # noqa: E402
from fer.memory import keep_freed_memory  # noqa: E402
from fer.model import stack  # noqa: E402
from fer.weights import ModelLoadError, for_inference  # noqa: E402

LIMIT_MS = 5.0


def main(argv: list[str]) -> int:
    runs = argv or ["runs/production"]
    keep_freed_memory()
    members = [load_runs(run) for run in runs]
    try:
        _, info = ensemble(members, runs)  # refuses runs of another shape or validation split, as `fer bundle` does
    except ModelLoadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg = TrainConfig.from_dict(info["config"])
    models = [model for model, _ in members]
    for model in models:
        model.cfg.temperature = 1.0  # raw logits: the ensemble fits its own temperature when bundled
    ds = data.load(cfg.data, quiet=True)
    _, (x_val, y_val) = data.train_val(ds, *cfg.validation_split)
    x_test, y_test = ds.split("PublicTest")

    torch.set_num_threads(1)
    speed = {}
    for k in range(1, len(models) + 1):
        for tta in ("none", "flip"):
            net = stack(models[:k])  # one network, or k side by side, as loaded: the graph `fer bundle` ships
            net.set_tta(tta)
            speed[k, tta] = ms_per_face(for_inference(net))
    logits = {}  # (tta, run) -> (validation, PublicTest); flip: the mean with the mirror image's, as the model does
    for i, model in enumerate(models):
        model.to(memory_format=torch.channels_last)  # faster in batches; after the timing, which ships contiguous
        model.set_tta("none")
        for split, x in enumerate((x_val, x_test)):
            plain = predict_logits(model, x)
            mirror = predict_logits(model, x[:, :, ::-1].copy())
            logits.setdefault(("none", i), [None, None])[split] = plain
            logits.setdefault(("flip", i), [None, None])[split] = (plain + mirror) / 2
        print(f"{runs[i]}: logits done", file=sys.stderr, flush=True)

    print(
        f"| members | test-time augmentation | val acc (n={len(y_val)}) | PublicTest acc | ms/face | within "
        f"{LIMIT_MS:g} ms |"
    )
    print("|---|---|---:|---:|---:|---|")
    for k in range(1, len(models) + 1):
        for subset in itertools.combinations(range(len(models)), k):
            for tta in ("none", "flip"):
                val = torch.stack([logits[tta, i][0] for i in subset]).mean(0)
                test = torch.stack([logits[tta, i][1] for i in subset]).mean(0)
                va = metrics_from_proba(torch.softmax(val, 1), y_val).accuracy
                te = metrics_from_proba(torch.softmax(test, 1), y_test).accuracy
                names = " + ".join(Path(runs[i]).name for i in subset)
                ms = speed[k, tta]
                print(f"| {names} | {tta} | {va:.2%} | {te:.2%} | {ms:.2f} | {'yes' if ms <= LIMIT_MS else 'no'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
