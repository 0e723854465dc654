"""The `fer` command line.

python -m fer --help
python -m fer train [--recipe paper] [--resume] [--data DIR|CSV] [...one flag per config field]
python -m fer evaluate --data DIR|CSV [--split test] [--labels fer2013|ferplus] [--model bundled|PATH|...] [--json]
python -m fer predict FILE... [--model bundled|PATH|models:/NAME@ALIAS] [--json] [--annotate DIR] [--min-face 40]
python -m fer predict clip.mp4 [--fps 5] [--csv faces.csv] [--annotate DIR] [--smooth SECONDS]
python -m fer predict photos/ [--csv faces.csv] [--jsonl faces.jsonl] [--resume] [--progress false]
python -m fer data DIR|CSV
python -m fer bundle runs/paper [--name ferplus|fer2013] [--production]   # ship a run's best weights
python -m fer models
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from fer.data import DEFAULT_DATA


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; `command`: the one being run, when known (another command's parser skips the
    train flags, whose help texts are read from the config's source: a second of start-up)."""
    from fer import parse_bool

    if command in (None, "train"):  # the trainer's config (and torch) are imported for train and --help alone
        from fer.training.config import RECIPES, add_config_flags

        recipes = sorted(RECIPES)
    else:
        recipes = None

    p = argparse.ArgumentParser(prog="python -m fer", description="Facial emotion recognition on FER2013.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser(
        "train",
        help="train a model (the paper's recipe by default) and log it to MLflow",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    t.add_argument("--recipe", default="paper", choices=recipes, help="named recipe the flags start from")
    t.add_argument("--resume", action="store_true", help="continue the run whose checkpoint is in --out")
    t.add_argument("--print-config", action="store_true", help="print the final config as JSON and exit")
    if command in (None, "train"):
        add_config_flags(t)

    e = sub.add_parser("evaluate", help="accuracy, per-class accuracy and confusion matrix on a split")
    e.add_argument("--data", default=DEFAULT_DATA, help="FER2013 folder or Kaggle CSV")
    e.add_argument(
        "--split",
        default="test",
        help="test (PublicTest), private (PrivateTest), train (Training) or val (the 20%% held out of Training)",
    )
    e.add_argument("--model", default="bundled", help=MODEL_HELP)
    e.add_argument(
        "--labels",
        default="fer2013",
        choices=("fer2013", "ferplus"),
        help="score against FER2013's labels (an 8-emotion model by its top one of their 7), or against the FER+ "
        "crowd's majority (faces with a tie or voted no face left out) with the mean KL divergence to the votes",
    )
    e.add_argument("--votes", default="", help="FER+ votes.csv for --labels ferplus (default: beside --data)")
    e.add_argument("--tta", default="model", help=TTA_HELP)
    e.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    e.add_argument("--figure", default="", help="also write the confusion matrix as a PNG here")
    e.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the validation split, for --split val (default: the seed the model was selected with, from "
        "its card or its MLflow run)",
    )

    pr = sub.add_parser("predict", help="find the faces in photos and give each one's emotion")
    pr.add_argument(
        "images",
        nargs="+",
        metavar="FILE",
        help="photos (JPEG, PNG, WebP, BMP, TIFF...), video clips (.mp4, .mov, .mkv, .webm, .avi...), folders "
        "(walked recursively, sorted; photos and clips told by their content) and quoted glob patterns ('**/*.jpg')",
    )
    pr.add_argument("--model", default="bundled", help=MODEL_HELP)
    pr.add_argument(
        "--json",
        action="store_true",
        help="print one JSON array, one object per FILE in order: {image, faces, error} for a photo, "
        "{video, sampled_fps, smooth_s, frames: [{t, frame, faces (with track)}], error} for a clip",
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
        "--fps",
        type=float,
        default=5.0,
        help="video clips: frames analysed per second of video (default 5; 0: every frame)",
    )
    pr.add_argument(
        "--csv",
        default="",
        metavar="PATH",
        help="one row per face, written as each file is done: file, face, x1, y1, x2, y2, score, whole_image, "
        "emotion, one column per emotion of the model, error (a photo with no face: one row, empty face fields); "
        "with clips also t, frame, track, smooth_s. Clips alone: video, t, frame, track, x1, y1, x2, y2, emotion, "
        "the emotions, smooth_s",
    )
    pr.add_argument(
        "--jsonl",
        default="",
        metavar="PATH",
        help="one JSON object per file (as --json gives it), one line each, written as each file is done",
    )
    pr.add_argument(
        "--resume",
        action="store_true",
        help="continue the --csv / --jsonl output of a stopped run: files already in it are skipped (a CSV's last "
        "file is analysed again, as the stop may have cut its rows)",
    )
    pr.add_argument(
        "--smooth",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="video clips: average each face track's probabilities over this time constant (default 0: off)",
    )
    pr.add_argument(
        "--progress",
        type=parse_bool,
        default=True,
        metavar="{true,false}",
        help="a progress bar on stderr (files/s, faces so far, time left; clips: frames/s), when stderr is a "
        "terminal (default true)",
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
    b.add_argument(
        "run",
        nargs="+",
        help="a run folder of `fer train` (its last.pt) or a checkpoint; several: one ensemble averaging them "
        "(same network shape, trained with the same --split-seed)",
    )
    b.add_argument("--data", default=DEFAULT_DATA, help="FER2013 folder or CSV for the PublicTest figures")
    b.add_argument(
        "--name",
        default="",
        help="which bundled model this becomes: ferplus or fer2013 (default: what the runs learned from)",
    )
    b.add_argument("--production", action="store_true", help="make it the model `--model bundled` means")
    b.add_argument("--to", default="", help="output folder (default: the package's bundled/<name>/ folder)")
    b.add_argument("--tta", default="model", help=TTA_HELP)

    sub.add_parser("models", help="list the model names the factory knows")
    return p


MODEL_HELP = (
    "bundled (the production model shipped in the package), bundled:ferplus or bundled:fer2013 (either), a weights "
    "file, or an MLflow URI such as models:/fer-emotion@production"
)
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
    from fer.training.config import apply_flags, recipe, resumed
    from fer.training.trainer import run, saved_config

    cfg = apply_flags(recipe(args.recipe), args)
    if args.resume:  # the run goes on as it was configured; flags given now only extend or move it
        out = Path(cfg.out or f"runs/{cfg.recipe}")
        saved = saved_config(out)
        if saved is not None:
            cfg, changes = resumed(saved, args)
            cfg.out = str(out)
            print(
                f"resuming {out} with its saved configuration (recipe {cfg.recipe})"
                + (f"; changed by flags: {'; '.join(changes)}" if changes else ""),
                file=sys.stderr,
            )
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    result = run(cfg, resume=args.resume)
    return 0 if result else 1


def cmd_evaluate(args) -> int:
    import numpy as np

    from fer import plots
    from fer.data import fer2013 as data
    from fer.evaluation.metrics import evaluate_arrays, format_table
    from fer.inference.weights import ModelLoadError, load_model, serve

    model, card = load_model(args.model)
    if args.tta != "model":
        if not hasattr(model, "set_tta"):
            raise ModelLoadError(f"{args.model}: test-time augmentation is fixed in an exported model; use --tta model")
        model.set_tta(args.tta)
    model = serve(model)  # scored as served: the same logits (to 1e-5) as the eager model, several times faster
    ds = data.load(args.data, quiet=args.json)
    split = args.split.lower()
    held_out = None
    if split == "val":
        held_out = _held_out(args, card)
        _, index = data.train_val_index(ds, "split", *held_out)
    elif split in SPLITS:
        index = np.flatnonzero(ds.usage_mask(SPLITS[split]))
    else:
        raise data.DataError(f"unknown split {args.split!r}; expected test, private, train or val")
    left_out = None
    if args.labels == "ferplus":
        from fer.data.votes import default_votes, read_votes

        path = args.votes or default_votes(args.data)
        if not path:
            raise data.DataError(f"no FER+ votes found beside {args.data}; give --votes PATH/votes.csv")
        votes = read_votes(path, list(ds.keys[index]))
        majority = votes.majority()
        counted = majority >= 0
        left_out = {"tie": int((votes.used & ~counted).sum()), "not_a_face": int((~votes.used).sum())}
        if not args.json:
            print(
                f"{int(counted.sum())} of {len(index)} faces have a crowd majority; left out: {left_out['tie']} "
                f"ties, {left_out['not_a_face']} dropped by FER+ or voted 'unknown' / 'not a face'",
                file=sys.stderr,
            )
        x, y = ds.images[index[counted]], majority[counted]
        m = evaluate_arrays(model, x, y, channels_last=False, votes=votes.distribution()[counted], n_labels=8)
    else:
        x, y = ds.images[index], ds.labels[index]
        m = evaluate_arrays(model, x, y, channels_last=False, n_labels=len(data.LABELS))
    figure = args.figure or None  # written only where asked: nothing is left behind in a temp folder
    if figure:
        plots.confusion_matrix(m.confusion, m.to_dict()["labels"], f"{args.split}: accuracy {m.accuracy:.2%}").savefig(
            figure, dpi=110, bbox_inches="tight"
        )
    if args.json:
        out = m.to_dict()
        out.update(split=SPLITS.get(split, split), model=args.model, tta=args.tta, figure=figure)
        out["served_path"] = getattr(model, "served_path", "eager")
        out.update(against="FER+ crowd majority" if args.labels == "ferplus" else "FER2013 labels")
        if left_out is not None:
            out["left_out"] = left_out
        if held_out:
            out.update(val_fraction=held_out[0], val_seed=held_out[1])
        print(json.dumps(out))
    else:
        drawn = f", {held_out[0]:.0%} of Training drawn with seed {held_out[1]}" if held_out else ""
        print(format_table(m, f"{args.model} on {args.split} ({m.n} images{drawn}, tta {args.tta})"))
        if figure:
            print(f"confusion matrix: {figure}")
    return 0


def _held_out(args, card: dict) -> tuple[float, int]:
    """(fraction, seed) of the validation split `fer evaluate --split val` draws: the one the model was selected
    on unless --seed says otherwise, with a warning wherever the figure would count faces the model trained on."""
    from fer.training.config import validation_split

    own = validation_split(card)
    if own is None:
        if args.seed is None:
            print(
                f"warning: {args.model} does not say which validation split it was selected on; drawing 20% of "
                "Training with seed 0 (--seed N draws another)",
                file=sys.stderr,
            )
        return 0.2, args.seed or 0
    val, fraction, seed = own
    if val == "public":
        print(
            f"warning: {args.model} was validated on PublicTest and trained on all of Training, so --split val "
            "measures faces it trained on; --split test gives its held-out figure",
            file=sys.stderr,
        )
    elif args.seed is not None and args.seed != seed:
        print(
            f"warning: {args.model} was selected on the validation split drawn with seed {seed}; --seed {args.seed} "
            "draws another, part of which it trained on, so its accuracy reads too high",
            file=sys.stderr,
        )
    return fraction, seed if args.seed is None else args.seed


def _predict_table(path: str, analysis) -> str:
    classes = list(analysis.faces[0].probabilities) if analysis.faces else []
    lines = [f"{path} ({analysis.width}×{analysis.height}): {analysis.message}"]
    if analysis.faces:
        lines.append(
            f"  {'#':>2}  {'box [x1, y1, x2, y2]':<24}{'score':>6}  {'emotion':<9}"
            + "".join(f"{lab:>9}" for lab in classes)
        )
        for i, f in enumerate(analysis.faces, 1):
            probs = "".join(f"{f.probabilities[lab]:>9.2f}" for lab in classes)
            score = "whole" if f.whole_image else f"{f.score:.2f}"
            lines.append(f"  {i:>2}  {str(f.box):<24}{score:>6}  {f.emotion:<9}{probs}")
    return "\n".join(lines)


class _JsonArray:
    """Prints one JSON array item by item, so a long clip's frames are not all held before they are printed."""

    def __init__(self, out):
        self.out, self.items = out, 0

    def begin_item(self) -> None:
        self.out.write("[" if self.items == 0 else ",\n")
        self.items += 1

    def item(self, obj) -> None:
        self.begin_item()
        self.out.write(json.dumps(obj))

    def close(self) -> None:
        self.out.write(("[" if self.items == 0 else "") + "]\n")
        self.out.flush()


def cmd_predict(args) -> int:
    from fer.detection.limits import check_min_face
    from fer.inference.batch import InputError, list_inputs, open_run, photos_left

    try:
        check_min_face(args.min_face)
    except ValueError as e:
        print(f"error: --min-face: {e}", file=sys.stderr)
        return 2
    if args.fps < 0:
        print(f"error: --fps {args.fps}: give samples per second, or 0 for every frame", file=sys.stderr)
        return 2
    if args.smooth < 0:
        print(f"error: --smooth {args.smooth}: give seconds, or 0 for no smoothing", file=sys.stderr)
        return 2
    if args.csv and args.jsonl and Path(args.csv).resolve() == Path(args.jsonl).resolve():
        print(f"error: --csv and --jsonl both name {args.csv}: give each its own file", file=sys.stderr)
        return 2
    if args.resume and not (args.csv or args.jsonl):
        print("error: --resume continues a --csv or --jsonl output: give the one to continue", file=sys.stderr)
        return 2
    try:
        listing = list_inputs(args.images)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    photos = photos_left(listing, args.csv, args.jsonl) if args.resume else listing.photos  # helpers for these
    # the run's helpers end with it, and its thread count too (main() called in-process)
    with open_run(photos, args.model, min_face=args.min_face, face_mode=args.face_mode) as run:
        return _predict_files(args, listing, run)


def _predict_files(args, listing, run) -> int:
    from tqdm import tqdm

    from fer.inference.batch import Output, OutputError, PhotoResult, file_key, iter_files, photo_columns
    from fer.inference.video import csv_columns

    clips_only = listing.photos == 0
    columns = csv_columns(run.classes) if clips_only else photo_columns(run.classes, listing.clips > 0)
    outputs = {}
    try:
        if args.csv:
            outputs["csv"] = Output(args.csv, columns, args.resume)
        if args.jsonl:
            outputs["jsonl"] = Output(args.jsonl, None, args.resume)
    except (OutputError, OSError) as e:
        for out in outputs.values():
            out.close()
        print(f"error: {e}", file=sys.stderr)
        return 2
    table, lines = outputs.get("csv"), outputs.get("jsonl")
    done = set.intersection(*(out.done for out in outputs.values())) if outputs else set()
    todo = sum(file_key(p) not in done for p, _ in listing.files)
    if args.resume:
        names = " and ".join(str(out.path) for out in outputs.values())
        print(f"resuming {names}: {len(listing.files) - todo} files already there, {todo} to go", file=sys.stderr)
    out_dir = Path(args.annotate) if args.annotate else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    emit = _JsonArray(sys.stdout) if args.json else None
    # a bar where someone watches: stderr a terminal (tqdm's disable=None), and not turned off
    bar = tqdm(total=todo, unit="file", desc="fer predict", file=sys.stderr, disable=None if args.progress else True)
    written, all_read, faces = set(), True, 0
    try:
        for item in iter_files(
            listing,
            lambda: run.pipeline,
            skip=done,
            keep_images=out_dir is not None,
            lanes=run.lanes,
            helpers=run.helpers,
        ):
            if not isinstance(item, PhotoResult):
                n, ok = _predict_clip(item.path, run.pipeline, args, emit, columns, table, lines, out_dir, bar)
                all_read &= ok
                faces += n
            else:
                all_read &= item.error is None
                faces += _predict_photo(item, args, emit, columns, table, lines, out_dir, written, bar)
            bar.update(1)
            bar.set_postfix(faces=faces, refresh=False)
    finally:
        bar.close()
        if emit:
            emit.close()
        for out in outputs.values():
            out.close()
    return 0 if all_read else 2


def _predict_photo(item, args, emit, columns, table, lines, out_dir, written, bar) -> int:
    """One photo's outputs of `fer predict`; the number of faces it has."""
    from fer.inference.batch import file_key, photo_rows

    key = file_key(item.path)
    analysis = item.analysis
    result = {"image": item.path, "faces": [f.to_dict() for f in analysis.faces] if analysis else [], "error": None}
    if item.error is not None:  # one bad file is reported and the others still get their answer
        result["error"] = item.error
    elif out_dir is not None:
        stem, n = Path(item.path).stem, 1
        target = out_dir / f"{stem}.png"
        while target in written:  # photo.jpg and photo.png, or a/x.jpg and b/x.jpg, keep apart
            n += 1
            target = out_dir / f"{stem}-{n}.png"
        written.add(target)
        from fer.inference.faces import annotate

        annotate(item.image, analysis).save(target)
        result["annotated"] = str(target)
    if table is not None and key not in table.done:
        table.write_rows(photo_rows(columns, item))
    if lines is not None and key not in lines.done:
        lines.write_object(result)
    if emit:
        emit.item(result)
    elif item.error is not None:
        bar.write(f"error: {item.error}", file=sys.stderr)
    else:
        bar.write(_predict_table(item.path, analysis), file=sys.stdout)
        if out_dir is not None:
            bar.write(f"  annotated: {result['annotated']}", file=sys.stdout)
    return len(result["faces"])


def _predict_clip(path: str, pipeline, args, emit, columns, table, lines, out_dir, outer) -> tuple[int, bool]:
    """One video clip of `fer predict`: frames sampled, faces tracked, outputs written. (faces, whether it was read
    to its end)."""
    from tqdm import tqdm

    from fer.inference.batch import clip_rows, file_key
    from fer.inference.video import ClipWriter, VideoError, analyze_clip, csv_rows, probe

    key = file_key(path)
    table = table if table is not None and key not in table.done else None
    lines = lines if lines is not None and key not in lines.done else None
    clip_table = table is not None and columns[0] == "video"  # a run of clips alone keeps the clips' own columns
    error, n_frames, n_faces, tracks, info, writer = None, 0, 0, set(), None, None
    head = {"video": path, "sampled_fps": args.fps or None, "smooth_s": args.smooth or None}
    frames = [] if lines is not None else None
    if emit:
        emit.begin_item()
        emit.out.write(json.dumps(head)[:-1] + ', "frames": [')
    bar = None
    try:
        info = probe(path)
        writer = ClipWriter(path, None, out_dir, args.fps or info.fps, args.smooth)
        bar = tqdm(
            total=info.samples(args.fps),
            desc=info.name,
            unit="frame",
            file=sys.stderr,
            disable=None if args.progress else True,
            position=1,
            leave=False,
        )
        for result in analyze_clip(pipeline, path, fps=args.fps, smooth=args.smooth, on_frame=writer.add):
            if emit:
                emit.out.write(("" if n_frames == 0 else ", ") + json.dumps(result))
            if frames is not None:
                frames.append(result)
            if clip_table:
                table.write_rows([dict(zip(columns, [path, *row])) for row in csv_rows(result, args.smooth)])
            elif table is not None:
                table.write_rows(clip_rows(columns, path, result, args.smooth))
            n_frames += 1
            n_faces += len(result["faces"])
            tracks.update(f["track"] for f in result["faces"])
            bar.update(1)
    except (VideoError, ValueError) as e:
        error = str(e)
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
    outputs = writer.outputs() if writer is not None else {}
    if table is not None and not clip_table and error is not None:
        table.write_rows([{"file": path, "error": error}])
    if lines is not None:
        lines.write_object({**head, "frames": frames, "error": error, **outputs})
    if emit:
        tail = {"error": error, **outputs}
        emit.out.write("], " + json.dumps(tail)[1:])
    else:
        if info is not None:
            rate = f"{args.fps:g}/s" if args.fps else "every frame"
            outer.write(
                f"{path} ({info.width}×{info.height}, {info.duration:.1f} s, {info.codec}): {n_frames} frames sampled "
                f"({rate}), {len(tracks)} face track(s)"
                + (f", smoothed over {args.smooth:g} s" if args.smooth else ""),
                file=sys.stdout,
            )
        for kind, where in outputs.items():
            outer.write(f"  {kind}: {where}", file=sys.stdout)
        if error:
            outer.write(f"error: {error}", file=sys.stderr)
    return n_faces, error is None


def cmd_data(args) -> int:
    from fer.data import fer2013 as data
    from fer.data.preprocess import sharpness

    ds = data.load(args.source)
    print(ds.summary())
    for i, usage in enumerate(data.USAGES):
        if (ds.usage == i).any():
            x, y = ds.split(usage)
            counts = ", ".join(f"{lab} {int((y == c).sum())}" for c, lab in enumerate(data.LABELS))
            print(f"{usage}: {counts}; sharpness (median Laplacian spread) {sharpness(x):.1f} grey levels")
    return 0


def cmd_bundle(args) -> int:
    from fer.training.bundle import bundle

    card = bundle(args.run, args.data, args.to or None, tta=args.tta, name=args.name, production=args.production)
    print(
        f"bundled {card['name']}{' x' + str(len(card['members'])) if 'members' in card else ''} "
        f"({card['params']:,} parameters, {card['epochs_run']} epochs): "
        f"PublicTest accuracy {card['publictest']['accuracy']:.4f} against {card['publictest']['against']}"
    )
    return 0


def cmd_models(args) -> int:
    from fer.model import count_parameters, create_model, model_names

    for name in model_names():
        print(f"{name}\t{count_parameters(create_model(name)):,} parameters")
    return 0


def main(argv: list[str] | None = None) -> int:
    from fer.inference.memory import keep_freed_memory

    keep_freed_memory()  # batches reuse the heap instead of faulting pages in again (fer/memory.py)
    given = sys.argv[1:] if argv is None else argv
    parser = _parser(next((a for a in given if not a.startswith("-")), None))
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    with warnings.catch_warnings():  # a warning of fer's own is one line for the user, as its errors are
        warnings.showwarning = lambda message, *_, **__: print(f"warning: {message}", file=sys.stderr)
        return _run(args)


def _run(args) -> int:
    try:
        return {
            "train": cmd_train,
            "evaluate": cmd_evaluate,
            "predict": cmd_predict,
            "data": cmd_data,
            "models": cmd_models,
            "bundle": cmd_bundle,
        }[args.command](args)
    except ValueError as e:  # fer.data's DataError, fer.inference.weights' ModelLoadError and the rest: named
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = "; `python -m fer train --resume` continues from the last checkpoint" if args.command == "train" else ""
        if args.command == "predict" and (args.csv or args.jsonl):
            hint = "; the same command with --resume continues the output where it stopped"
        print(f"interrupted{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
