"""Which ensemble to ship: validation accuracy of every subset of the runs, with and without flip test-time
augmentation, beside the milliseconds per face each costs as served. Chosen on validation only; PublicTest is
printed as the test figure it is.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/ensemble_table.py runs/production runs/ens-s1 runs/ens-s2 \
        [--against production,ens-s1]

After the table, the best subsets within the 5 ms limit are set against the shipped one (`--against`: its runs'
folder names, and its test-time augmentation, flip unless `--against-tta none`), face by face on validation:
how many faces each reads right that the other does not, and the exact McNemar p-value of that split, so a
gain of a few faces is not taken for a better model. `--against-model` sets them against a shipped model of any
shape instead (a model file, 'bundled', or an MLflow URI, as `fer evaluate --model` takes), read as served; it
must have been selected on the runs' validation split:

    OMP_NUM_THREADS=1 .venv/bin/python scripts/ensemble_table.py runs/long-w4-s30 runs/long-w4-s31 \
        --against-model bundled

The runs must share the network's shape and the validation split (`fer train --split-seed`), as `fer bundle`
requires. Each run's logits are computed once per augmentation, then averaged per subset, which is what the
stacked network computes (fer.model.stack, tested).
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer.data import fer2013 as data  # noqa: E402
from fer.evaluation.metrics import metrics_from_proba, ms_per_face, predict_logits  # noqa: E402
from fer.inference.memory import keep_freed_memory  # noqa: E402
from fer.inference.weights import ModelLoadError, for_inference, load_model  # noqa: E402
from fer.model import stack  # noqa: E402
from fer.training.config import (  # noqa: E402
    TrainConfig,
    split_in_words,
    validation_split,  # noqa: E402
)
from fer.training.runs import ensemble, load_runs  # noqa: E402

LIMIT_MS = 5.0


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar test: the chance of a split at least this uneven if both were equally right."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2**n
    return min(1.0, 2 * tail)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="*", default=["runs/production"])
    ap.add_argument("--against", default="", help="the shipped subset: run folder names, comma-separated")
    ap.add_argument("--against-tta", default="flip", choices=("none", "flip"))
    ap.add_argument(
        "--against-model", default="", help="a shipped model of any shape instead: a file, 'bundled', or an MLflow URI"
    )
    ap.add_argument("--top", type=int, default=5, help="how many subsets within the limit to set against it")
    args = ap.parse_args(argv)
    runs = args.runs
    names = [Path(r).name for r in runs]
    shipped = {n for n in args.against.split(",") if n}
    unknown = sorted(shipped - set(names))
    if unknown:
        print(f"error: --against names {', '.join(unknown)}, not among the runs ({', '.join(names)})", file=sys.stderr)
        return 2
    if shipped and args.against_model:
        print("error: --against and --against-model each name the shipped model; give one", file=sys.stderr)
        return 2
    against = tuple(i for i, n in enumerate(names) if n in shipped)  # in run order, as the subsets list them
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
    outside = None  # the --against-model: (label, which validation faces it reads right)
    if args.against_model:
        try:
            outside = served_right(args.against_model, cfg.validation_split, x_val, y_val)
        except ModelLoadError as e:
            print(f"error: --against-model: {e}", file=sys.stderr)
            return 2

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
    right = {}  # (subset, tta) -> which validation faces it reads right, for the subsets within the limit
    y_val_t = torch.as_tensor(y_val, dtype=torch.long)
    for k in range(1, len(models) + 1):
        for subset in itertools.combinations(range(len(models)), k):
            for tta in ("none", "flip"):
                val = torch.stack([logits[tta, i][0] for i in subset]).mean(0)
                test = torch.stack([logits[tta, i][1] for i in subset]).mean(0)
                va = metrics_from_proba(torch.softmax(val, 1), y_val).accuracy
                te = metrics_from_proba(torch.softmax(test, 1), y_test).accuracy
                label = " + ".join(names[i] for i in subset)
                ms = speed[k, tta]
                print(f"| {label} | {tta} | {va:.2%} | {te:.2%} | {ms:.2f} | {'yes' if ms <= LIMIT_MS else 'no'} |")
                if ms <= LIMIT_MS or (subset, tta) == (against, args.against_tta):
                    right[subset, tta] = val.argmax(1) == y_val_t
    if against:
        label = f"{' + '.join(names[i] for i in against)} ({args.against_tta})"
        compare(right, label, right[against, args.against_tta], names, args.top)
    elif outside:
        compare(right, *outside, names, args.top)
    return 0


def served_right(spec: str, split: tuple, x_val, y_val) -> tuple[str, torch.Tensor]:
    """Which validation faces the model `spec` reads right as served, and a label with its accuracy and speed.
    Refused unless its card says it was selected on `split`: on another, it trained on some of these faces."""
    model, card = load_model(spec)
    own = validation_split(card)
    if own != split:
        said = "does not say which validation split it was selected on"
        if own is not None:
            said = (
                f"was selected on another validation split ({split_in_words(own)}) than the runs "
                f"({split_in_words(split)})"
            )
        raise ModelLoadError(f"{spec} {said}, so it may have trained on their validation faces")
    right = predict_logits(model, x_val, channels_last=False).argmax(1) == torch.as_tensor(y_val, dtype=torch.long)
    ms = card.get("ms_per_face")
    return f"{spec} (as served, {right.float().mean():.2%} val{f', {ms} ms/face' if ms else ''})", right


def compare(right: dict, label: str, base: torch.Tensor, names: list[str], top: int) -> None:
    """The best subsets within the limit against the shipped model (`base`: the validation faces it reads right),
    face by face on validation."""
    best = sorted(right, key=lambda key: -int(right[key].sum()))[:top]
    print(f"\nagainst {label}, validation, face by face:")
    print("| members | test-time augmentation | val acc | right here only | right there only | McNemar p |")
    print("|---|---|---:|---:|---:|---:|")
    for key in best:
        mine = right[key]
        only_a, only_b = int((mine & ~base).sum()), int((base & ~mine).sum())
        label = " + ".join(names[i] for i in key[0])
        p = mcnemar_p(only_a, only_b)
        print(f"| {label} | {key[1]} | {mine.float().mean():.2%} | {only_a} | {only_b} | {p:.3f} |")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
