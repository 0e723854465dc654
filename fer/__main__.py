"""The `fer` command line.

python -m fer --help
python -m fer train [--recipe paper] [--resume] [--data DIR|CSV] [...one flag per config field]
python -m fer evaluate --data DIR|CSV [--split test] [--model bundled|PATH|models:/NAME@ALIAS] [--json]
python -m fer predict IMAGE... [--model bundled|PATH|models:/NAME@ALIAS] [--json] [--annotate DIR] [--min-face 40]
python -m fer data DIR|CSV
python -m fer bundle runs/paper          # ship a run's best weights as the bundled model
python -m fer models
"""

from __future__ import annotations

import argparse
import json
import sys


def _parser() -> argparse.ArgumentParser:
    from fer.config import RECIPES, add_config_flags

    p = argparse.ArgumentParser(prog="python -m fer", description="Facial emotion recognition on FER2013.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser(
        "train",
        help="train a model (the paper's recipe by default) and log it to MLflow",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    t.add_argument("--recipe", default="paper", choices=sorted(RECIPES), help="named recipe the flags start from")
    t.add_argument("--resume", action="store_true", help="continue the run whose checkpoint is in --out")
    t.add_argument("--print-config", action="store_true", help="print the final config as JSON and exit")
    add_config_flags(t)

    e = sub.add_parser("evaluate", help="accuracy, per-class accuracy and confusion matrix on a split")
    e.add_argument("--data", required=True, help="FER2013 folder or Kaggle CSV")
    e.add_argument(
        "--split",
        default="test",
        help="test (PublicTest), private (PrivateTest), train (Training) or val (the 20%% held out of Training)",
    )
    e.add_argument("--model", default="bundled", help="weights path, models:/NAME@ALIAS, or bundled")
    e.add_argument("--tta", default="model", help=TTA_HELP)
    e.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    e.add_argument("--figure", default="", help="also write the confusion matrix as a PNG here")
    e.add_argument("--seed", type=int, default=0, help="seed of the validation split, for --split val")

    pr = sub.add_parser("predict", help="find the faces in photos and give each one's emotion")
    pr.add_argument("images", nargs="+", metavar="IMAGE", help="photo files (JPEG, PNG, WebP, BMP, TIFF...)")
    pr.add_argument("--model", default="bundled", help="weights path, models:/NAME@ALIAS, or bundled")
    pr.add_argument(
        "--json",
        action="store_true",
        help="print one JSON array, one {image, faces, error} object per IMAGE in order",
    )
    pr.add_argument("--annotate", default="", metavar="DIR", help="write each photo with its faces boxed to DIR/*.png")
    pr.add_argument(
        "--min-face",
        type=int,
        default=40,
        metavar="PX",
        help="smallest face looked for, in the photo's own pixels, at every photo size (default 40; 12 at least)",
    )
    pr.add_argument(
        "--face-mode",
        default="auto",
        choices=("auto", "detect", "whole"),
        help="detect: MTCNN's faces only; whole: each photo is one face (a FER2013 file, a tight crop); "
        "auto (default): detect; a photo with both sides up to 160 px is one face when no face is found in it "
        "or its one face fills at least half of it",
    )

    d = sub.add_parser("data", help="read a FER2013 folder or CSV into the cache and print its counts")
    d.add_argument("source", help="FER2013 folder or Kaggle CSV")

    b = sub.add_parser("bundle", help="ship a run's best weights, with a model card, as the bundled model")
    b.add_argument("run", help="a run folder of `fer train` (its last.pt or best.pt) or a weights file")
    b.add_argument("--data", default="../shared/data/fer2013", help="FER2013 folder or CSV for the PublicTest figures")
    b.add_argument("--to", default="", help="output folder (default: the package's bundled/ folder)")
    b.add_argument("--tta", default="model", help=TTA_HELP)

    sub.add_parser("models", help="list the model names the factory knows")
    return p


TTA_HELP = (
    "test-time augmentation: model (as the model was trained to serve), none, flip, shiftN (the face moved N px "
    "4 ways) or flip+shiftN"
)

SPLITS = {
    "test": "PublicTest",
    "public": "PublicTest",
    "publictest": "PublicTest",
    "private": "PrivateTest",
    "privatetest": "PrivateTest",
    "train": "Training",
    "training": "Training",
}


def cmd_train(args) -> int:
    from fer.config import apply_flags, recipe
    from fer.train import run

    cfg = apply_flags(recipe(args.recipe), args)
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    result = run(cfg, resume=args.resume)
    return 0 if result else 1


def cmd_evaluate(args) -> int:
    from fer import data, plots
    from fer.evaluate import evaluate_arrays, format_table
    from fer.weights import ModelLoadError, load_model

    model, _ = load_model(args.model)
    if args.tta != "model":
        if not hasattr(model, "set_tta"):
            raise ModelLoadError(f"{args.model}: test-time augmentation is fixed in an exported model; use --tta model")
        model.set_tta(args.tta)
    ds = data.load(args.data, quiet=args.json)
    split = args.split.lower()
    if split == "val":
        _, (x, y) = data.train_val(ds, "split", 0.2, args.seed)
    elif split in SPLITS:
        x, y = ds.split(SPLITS[split])
    else:
        raise data.DataError(f"unknown split {args.split!r}; expected test, private, train or val")
    m = evaluate_arrays(model, x, y, channels_last=False)
    figure = args.figure or None  # written only where asked: nothing is left behind in a temp folder
    if figure:
        plots.confusion_matrix(m.confusion, m.to_dict()["labels"], f"{args.split}: accuracy {m.accuracy:.2%}").savefig(
            figure, dpi=110, bbox_inches="tight"
        )
    if args.json:
        out = m.to_dict()
        out.update(split=SPLITS.get(split, split), model=args.model, tta=args.tta, figure=figure)
        print(json.dumps(out))
    else:
        print(format_table(m, f"{args.model} on {args.split} ({m.n} images, tta {args.tta})"))
        if figure:
            print(f"confusion matrix: {figure}")
    return 0


def _predict_table(path: str, analysis) -> str:
    from fer import LABELS

    lines = [f"{path} ({analysis.width}×{analysis.height}): {analysis.message}"]
    if analysis.faces:
        lines.append(
            f"  {'#':>2}  {'box [x1, y1, x2, y2]':<24}{'score':>6}  {'emotion':<9}"
            + "".join(f"{lab:>9}" for lab in LABELS)
        )
        for i, f in enumerate(analysis.faces, 1):
            probs = "".join(f"{f.probabilities[lab]:>9.2f}" for lab in LABELS)
            score = "whole" if f.whole_image else f"{f.score:.2f}"
            lines.append(f"  {i:>2}  {str(f.box):<24}{score:>6}  {f.emotion:<9}{probs}")
    return "\n".join(lines)


def cmd_predict(args) -> int:
    from pathlib import Path

    from fer.detect import check_min_face
    from fer.faces import FacePipeline, annotate
    from fer.images import ImageError, read_image
    from fer.weights import load_model

    try:
        check_min_face(args.min_face)
    except ValueError as e:
        print(f"error: --min-face: {e}", file=sys.stderr)
        return 2
    model, _ = load_model(args.model)
    pipeline = FacePipeline(model, min_face=args.min_face, face_mode=args.face_mode)
    out_dir = Path(args.annotate) if args.annotate else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    results, written, all_read = [], set(), True
    for path in args.images:
        try:
            image = read_image(path)
        except ImageError as e:  # one bad file is reported and the others still get their answer
            all_read = False
            results.append({"image": path, "faces": [], "error": str(e)})
            if not args.json:
                print(f"error: {e}", file=sys.stderr)  # the message names the file
            continue
        try:
            analysis = pipeline.analyze(image)
        except ValueError as e:  # the smallest face asked for does not fit in this photo
            all_read = False
            results.append({"image": path, "faces": [], "error": f"{Path(path).name}: {e}"})
            if not args.json:
                print(f"error: {Path(path).name}: {e}", file=sys.stderr)
            continue
        result = {"image": path, "faces": [f.to_dict() for f in analysis.faces], "error": None}
        if out_dir is not None:
            stem, n = Path(path).stem, 1
            target = out_dir / f"{stem}.png"
            while target in written:  # photo.jpg and photo.png, or a/x.jpg and b/x.jpg, do not overwrite each other
                n += 1
                target = out_dir / f"{stem}-{n}.png"
            written.add(target)
            annotate(image, analysis).save(target)
            result["annotated"] = str(target)
        results.append(result)
        if not args.json:
            print(_predict_table(path, analysis))
            if out_dir is not None:
                print(f"  annotated: {result['annotated']}")
    if args.json:
        print(json.dumps(results))
    return 0 if all_read else 2


def cmd_data(args) -> int:
    from fer import data
    from fer.preprocess import sharpness

    ds = data.load(args.source)
    print(ds.summary())
    for i, usage in enumerate(data.USAGES):
        if (ds.usage == i).any():
            x, y = ds.split(usage)
            counts = ", ".join(f"{lab} {int((y == c).sum())}" for c, lab in enumerate(data.LABELS))
            print(f"{usage}: {counts}; sharpness (median Laplacian spread) {sharpness(x):.1f} grey levels")
    return 0


def cmd_bundle(args) -> int:
    from fer.bundle import bundle

    card = bundle(args.run, args.data, args.to or None, tta=args.tta)
    print(
        f"bundled {card['name']} ({card['params']:,} parameters, {card['epochs_run']} epochs): "
        f"PublicTest accuracy {card['publictest']['accuracy']:.4f}"
    )
    return 0


def cmd_models(args) -> int:
    from fer.model import count_parameters, create_model, model_names

    for name in model_names():
        print(f"{name}\t{count_parameters(create_model(name)):,} parameters")
    return 0


def main(argv: list[str] | None = None) -> int:
    from fer.data import DataError
    from fer.weights import ModelLoadError

    parser = _parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    try:
        return {
            "train": cmd_train,
            "evaluate": cmd_evaluate,
            "predict": cmd_predict,
            "data": cmd_data,
            "models": cmd_models,
            "bundle": cmd_bundle,
        }[args.command](args)
    except (DataError, ModelLoadError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = "; `python -m fer train --resume` continues from the last checkpoint" if args.command == "train" else ""
        print(f"interrupted{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
