"""``export_model``: what ``igc export`` does, as one library call (the command line only
parses its arguments and prints the result).

Every argument, the output paths and the input size are checked before any work; the
network is put in its inference form, written atomically, loaded back and compared with
the eval-mode PyTorch model, and optionally quantised to int8. A network with random
weights first gets BatchNorm statistics of random images
(:func:`~igc.deploy.source.calibrate_batchnorm`), so that the check compares outputs of a
normal size, and the difference is reported relative to the largest output as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from igc.checks import check_int, check_writable_file
from igc.deploy.chain.fused import unfused
from igc.deploy.export import (
    CHECK_BATCHES,
    DEFAULT_OPSET,
    ONNX_FORM,
    Difference,
    check_onnx,
    check_opset,
    check_pt2,
    check_safetensors,
    export_onnx,
    export_pt2,
    export_safetensors,
    require_onnx,
)
from igc.deploy.inputs import MAX_DEPLOY_BATCH, check_input
from igc.deploy.optimize import optimize
from igc.deploy.source import ModelSource, calibrate_batchnorm, load_source
from igc.errors import IGCError
from igc.names import EXPORT_FORMATS, EXPORT_FORMS


@dataclass
class ExportResult:
    """What :func:`export_model` wrote and measured."""

    source: str
    model: str
    format: str
    form: str
    input: tuple[int, int, int]
    weights: str
    file: Path
    difference: Difference
    bn_calibrated: bool
    opset: int | None
    int8: object | None = None  # an igc.deploy.int8.Int8Result

    def to_dict(self) -> dict:
        """JSON-ready fields (what ``igc export --json`` prints)."""
        return {"source": self.source, "model": self.model, "format": self.format,
                "form": self.form, "input": list(self.input), "weights": self.weights,
                "file": str(self.file), "opset": self.opset,
                "checked_batches": list(self.difference.batches),
                "max_abs_diff": self.difference.max_abs,
                "max_rel_diff": self.difference.max_rel,
                "bn_statistics": "random images" if self.bn_calibrated else "model's",
                **({"int8": self.int8.to_dict()} if self.int8 is not None else {})}


def export_model(source: str | ModelSource, format: str, out: str | Path | None = None, *,
                 input_size: int | None = None, batch: int = 1, form: str | None = None,
                 opset: int = DEFAULT_OPSET, int8: bool = False, calibration: int = 256,
                 eval_images: int | None = None, calibrate_bn: bool | None = None
                 ) -> ExportResult:
    """Export a registered model or checkpoint (``source``) as ONNX or ``pt2`` to ``out``
    (default ``NAME.onnx`` / ``NAME.pt2`` here), check it at batch 1, 3 and ``batch``,
    and with ``int8`` also write and measure ``NAME.int8.onnx``.

    ``form``: the ``optimize`` mode exported (default ``"grouped"`` for ONNX, which
    onnxruntime runs fastest, ``"auto"`` for pt2) or ``"none"``. ``batch`` is the example
    batch (the exported batch dimension is dynamic). ``calibrate_bn`` (default: when the
    weights are random) sets the BatchNorm statistics from random images first, in place.
    Raises IGCError (one line) for any bad argument before writing anything.
    """
    if format not in EXPORT_FORMATS:
        raise IGCError(f"unknown export format {format!r}; use one of "
                       f"{', '.join(EXPORT_FORMATS)}")
    if int8 and format != "onnx":
        raise IGCError("--int8 needs --format onnx (int8 models are onnxruntime models)")
    check_int(batch, "batch", 1, MAX_DEPLOY_BATCH)
    if format == "safetensors" and form not in (None, "none"):
        raise IGCError("--format safetensors holds the weights of the network as built; "
                       "--form applies to onnx and pt2")
    form = form or {"onnx": ONNX_FORM, "safetensors": "none"}.get(format, "auto")
    if form not in EXPORT_FORMS:
        raise IGCError(f"unknown form {form!r}; use one of {', '.join(EXPORT_FORMS)}")
    if format == "onnx":
        require_onnx()
        check_opset(opset)
    if int8:
        # int8 loads the data sets (igc.data) to calibrate: only an --int8 export pays that
        from igc.deploy.int8 import MAX_IMAGES

        check_int(calibration, "calibration images", 1, MAX_IMAGES)
        if eval_images is not None:
            check_int(eval_images, "evaluation images", 1, MAX_IMAGES)
    src = source if isinstance(source, ModelSource) else load_source(source)
    target = check_writable_file(out if out is not None else f"{src.name}.{format}", "--out",
                                 (f".{format}",))
    if int8:
        from igc.deploy.int8 import check_image_count, int8_path_for  # as above

        check_writable_file(int8_path_for(target), "the int8 model's file")
        check_image_count(calibration, src.in_chans, input_size or src.input_size,
                          "calibration images")
    size = src.input_size if input_size is None else input_size
    check_input(src.model, src.in_chans, size, batch, src.name)
    calibrated = src.checkpoint is None and format != "safetensors" if calibrate_bn is None \
        else calibrate_bn
    if calibrated:
        calibrate_batchnorm(src.model, src.in_chans, size)
    # an exported file must run without igc's native kernel: every block in its PyTorch form
    model = src.model if form == "none" else unfused(optimize(src.model, form, batch=batch))
    batches = tuple(sorted({*CHECK_BATCHES, min(batch, 64)}))
    if format == "onnx":
        export_onnx(model, target, src.in_chans, size, batch, opset)
        difference = check_onnx(target, src.model, src.in_chans, size, batches)
    elif format == "safetensors":
        export_safetensors(model, target, weights_header(src, size))
        difference = check_safetensors(target, src.model, src.in_chans, size, batches)
    else:
        export_pt2(model, target, src.in_chans, size, batch)
        difference = check_pt2(target, src.model, src.in_chans, size, batches)
    result = ExportResult(source if isinstance(source, str) else src.name, src.name, format,
                          form, (src.in_chans, size, size), src.weights, target, difference,
                          calibrated, opset if format == "onnx" else None)
    if int8:
        from igc.deploy.int8 import int8_export  # as above

        result.int8 = int8_export(target, src.in_chans, size, data=src.data,
                                  recipe=src.recipe, trained=src.checkpoint is not None,
                                  calibration=calibration, eval_images=eval_images)
    return result


def weights_header(src: ModelSource, size: int) -> dict:
    """igc's ``.safetensors`` header for the network of ``src`` (input side ``size``):
    the network, its builder options, classes, channels, data set and normalisation."""
    cfg = getattr(src.model, "pretrained_cfg", None) or {}
    mean, std = cfg.get("mean"), cfg.get("std")
    header = {"model": src.name, "model_args": dict(src.model_args or {}),
              "num_classes": src.num_classes, "in_chans": src.in_chans, "data": src.data,
              "image_size": size}
    if src.classes and len(src.classes) == src.num_classes:
        header["classes"] = list(src.classes)
    if mean is not None and std is not None and len(mean) == src.in_chans:
        header["mean"], header["std"] = list(map(float, mean)), list(map(float, std))
    return header


__all__ = ["ExportResult", "export_model", "weights_header"]
