"""Export a network to ONNX, torch.export or safetensors, checked.

The network (a registered name with random weights, or a checkpoint or run folder) is
put in its inference form (BatchNorm folded, shuffles removed), written atomically,
loaded back and compared with the eval-mode PyTorch model at two batch sizes; the
exported batch size is dynamic. --int8 also writes an int8 ONNX model (onnxruntime
static quantisation) and reports its accuracy change. ONNX needs the export extra:
pip install 'igc-torch[export]'. --format safetensors writes the weights as trained
(with the network's name, options, classes and normalisation in the header), loadable
with create_model(NAME, pretrained=FILE).

Examples:
  igc export igcv2_fmnist --format onnx
  igc export runs/igcv2_fmnist-fashion-mnist --format onnx --int8 --out m.onnx
  igc export igcv3_100 --format pt2 --form structured
  igc export runs/igcv2_fmnist-fashion-mnist --format safetensors
"""

from __future__ import annotations

import argparse
import json

from igc import checks
from igc.cli import args as A
from igc.cli.parser import add_command
from igc.names import DEFAULT_OPSET, EXPORT_FORMATS, EXPORT_FORMS, ONNX_OPSETS

# The library is imported inside the functions that use it: `igc --help` and every
# subcommand's --help answer in under 0.5 s without it (tests/test_cli_startup.py).


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``igc export`` to the subcommands ``sub``."""
    p = add_command(sub, "export", __doc__)
    p.add_argument("source", metavar="NAME|CHECKPOINT", type=A.text("source", checks.PATH_MAX),
                   help="a registered model name (random weights) or a checkpoint / run dir")
    p.add_argument("--format", required=True, type=A.choice("export format", EXPORT_FORMATS),
                   metavar="{" + ",".join(EXPORT_FORMATS) + "}",
                   help="ONNX, a torch.export program (pt2), or the weights (safetensors)")
    p.add_argument("--out", type=A.out_file((), "--out"), metavar="FILE",
                   help="output file (default NAME.FORMAT here)")
    p.add_argument("--input-size", type=A.integer("--input-size"), metavar="N",
                   help="image side (default: the model's)")
    p.add_argument("--batch", type=A.integer("--batch"), default=1, metavar="N",
                   help="batch of the example input (the exported batch size is dynamic)")
    p.add_argument("--form", type=A.choice("inference form", EXPORT_FORMS),
                   metavar="{" + ",".join(EXPORT_FORMS) + "}",
                   help="inference form exported (default: grouped for onnx, which "
                        "onnxruntime runs fastest; auto for pt2); none: the eval model")
    p.add_argument("--int8", action="store_true",
                   help="also write an int8 model (onnxruntime static quantisation)")
    p.add_argument("--calibration", type=A.integer("--calibration"), default=256, metavar="N",
                   help="images used to calibrate int8 activations (default 256)")
    p.add_argument("--eval-images", type=A.integer("--eval-images"), default=None,
                   metavar="N",
                   help="test images to measure the int8 accuracy change on (default all)")
    p.add_argument("--opset", type=A.integer("--opset"), default=DEFAULT_OPSET, metavar="N",
                   help=f"ONNX opset, {ONNX_OPSETS[0]} to {ONNX_OPSETS[1]} (default "
                        f"{DEFAULT_OPSET}; at most what the installed onnx has)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``igc export`` with the parsed ``args``; returns the exit status."""
    from igc.deploy.pipeline import export_model

    result = export_model(args.source, args.format, args.out, input_size=args.input_size,
                          batch=args.batch, form=args.form, opset=args.opset, int8=args.int8,
                          calibration=args.calibration, eval_images=args.eval_images)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    c, size, _ = result.input
    what = {"onnx": f"ONNX (opset {result.opset}, onnx.checker ok)",
            "safetensors": "weights (safetensors)"}.get(result.format, "torch.export program")
    weights = result.weights if result.weights != "random" else "random weights" + (
        ", BatchNorm statistics of random images" if result.bn_calibrated else "")
    print(f"wrote {result.file}: {what}, {result.model} ({weights}), input "
          f"N x {c} x {size} x {size}, dynamic batch, form {result.form}")
    runner = {"onnx": "onnxruntime", "safetensors": "create_model(pretrained=FILE)"}.get(
        result.format, "torch.export.load")
    d = result.difference
    print(f"checked with {runner} against PyTorch at batch {', '.join(map(str, d.batches))}: "
          f"largest |difference| {d.max_abs:.3g}, {d.max_rel:.3g} of the largest output")
    if result.int8 is not None:
        q = result.int8.to_dict()
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
