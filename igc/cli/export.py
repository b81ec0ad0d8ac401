"""``igc export``: write a network as ONNX or a torch.export program, check it against
PyTorch, optionally quantise it to int8."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from igc.errors import IGCError

FORMATS = ("onnx", "pt2")


def register(sub: argparse._SubParsersAction) -> None:
    from igc.deploy.optimize import MODES

    p = sub.add_parser("export", help="export a model to ONNX or a torch.export program",
                       description=__doc__)
    p.add_argument("source", metavar="NAME|CHECKPOINT",
                   help="a registered model name (random weights) or a checkpoint / run dir")
    p.add_argument("--format", required=True, choices=FORMATS, help="onnx or pt2")
    p.add_argument("--out", help="output file (default NAME.onnx / NAME.pt2 here)")
    p.add_argument("--input-size", type=int, help="image side (default: the model's)")
    p.add_argument("--batch", type=int, default=1,
                   help="batch of the example input (the exported batch size is dynamic)")
    p.add_argument("--form", choices=[*MODES, "none"],
                   help="inference form exported (default: grouped for onnx, which "
                        "onnxruntime runs fastest; auto for pt2); none: the eval model")
    p.add_argument("--int8", action="store_true",
                   help="also write an int8 model (onnxruntime static quantisation)")
    p.add_argument("--calibration", type=int, default=256, metavar="N",
                   help="images used to calibrate int8 activations")
    p.add_argument("--eval-images", type=int, default=None, metavar="N",
                   help="test images to measure the int8 accuracy change on (default all)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from igc.deploy import export as ex
    from igc.deploy.optimize import optimize

    if args.int8 and args.format != "onnx":
        raise IGCError("--int8 needs --format onnx (int8 models are onnxruntime models)")
    if args.batch < 1:
        raise IGCError(f"--batch must be positive, got {args.batch}")
    if args.format == "onnx":
        ex.require_onnx()
    source = ex.load_source(args.source)
    size = source.input_size if args.input_size is None else args.input_size
    ex.check_input_size(source.model, source.in_chans, size, source.name)
    if args.form is None:
        from igc.deploy.bench import ONNX_FORM

        args.form = ONNX_FORM if args.format == "onnx" else "auto"
    model = source.model if args.form == "none" else optimize(source.model, args.form,
                                                              batch=args.batch)
    out = Path(args.out or f"{source.name}.{args.format}")
    batches = sorted({*ex.CHECK_BATCHES, min(args.batch, 64)})
    result: dict = {"source": args.source, "model": source.name, "format": args.format,
                    "form": args.form, "input": [source.in_chans, size, size],
                    "weights": source.checkpoint or "random", "file": str(out),
                    "checked_batches": batches}
    if args.format == "onnx":
        ex.export_onnx(model, out, source.in_chans, size, args.batch, args.opset)
        result["max_abs_diff"] = ex.verify_onnx(out, source.model, source.in_chans, size,
                                                batches)
    else:
        ex.export_pt2(model, out, source.in_chans, size, args.batch)
        result["max_abs_diff"] = ex.verify_pt2(out, source.model, source.in_chans, size,
                                               batches)
    if args.int8:
        result["int8"] = _int8(args, ex, source, size, out)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    what = f"ONNX (opset {args.opset}, onnx.checker ok)" if args.format == "onnx" \
        else "torch.export program"
    print(f"wrote {out}: {what}, {source.name} ({result['weights']} weights), input "
          f"N x {source.in_chans} x {size} x {size}, dynamic batch, form {args.form}")
    runner = "onnxruntime" if args.format == "onnx" else "torch.export.load"
    print(f"checked with {runner} against PyTorch at batch {', '.join(map(str, batches))}: "
          f"largest |difference| {result['max_abs_diff']:.3g}")
    if args.int8:
        q = result["int8"]
        print(f"wrote {q['file']}: int8 (static, QDQ, per-channel weights, {q['calibration']} "
              f"calibration images from {q['calibration_source']})")
        if q["fp32_top1"] is not None:
            print(f"int8 on {q['data']} ({q['images']} images): top-1 {q['fp32_top1']:.2%} -> "
                  f"{q['int8_top1']:.2%} ({q['top1_change'] * 100:+.2f} points), top-1 "
                  f"agreement {q['agreement']:.2%}, largest logit |difference| "
                  f"{q['max_logit_diff']:.3g}")
        else:
            print(f"int8 on {q['images']} {q['data']} images (no labels: random weights or no "
                  f"data set): top-1 agreement with fp32 {q['agreement']:.2%}, largest logit "
                  f"|difference| {q['max_logit_diff']:.3g}")
    return 0


def _int8(args: argparse.Namespace, ex, source, size: int, fp32: Path) -> dict:
    int8_path = fp32.with_name(fp32.stem + ".int8" + fp32.suffix)
    calibration = test = None
    if source.data:  # the model's data set, when it is on this machine
        try:
            calibration = ex.dataset_images(source.data, "train", args.calibration,
                                            source.in_chans, size, source.recipe)
            test = ex.dataset_images(source.data, "test", args.eval_images, source.in_chans,
                                     size, source.recipe)
        except IGCError:
            calibration = None
        if test is not None and not source.checkpoint:
            test.labels = None  # random weights: accuracy means nothing, agreement does
    if calibration is None:
        calibration = ex.random_images(args.calibration, source.in_chans, size, seed=1)
        test = ex.random_images(args.eval_images or 512, source.in_chans, size, seed=2)
    ex.quantize_int8(fp32, int8_path, calibration.images)
    report = ex.compare_int8(fp32, int8_path, test).to_dict()
    return {"file": str(int8_path), "calibration": len(calibration.images),
            "calibration_source": calibration.source, **report}
