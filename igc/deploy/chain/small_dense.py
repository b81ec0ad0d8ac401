"""The ``"small-dense"`` chain mode: the segment forms for graph compilers that run dense
1x1 convolutions far faster than grouped ones (OpenVINO's CPU plugin), chosen by size.

A linear segment is exported as one dense 1x1 convolution when that costs little more
arithmetic, and as its grouped convolutions otherwise:

* dense when the dense product has at most :data:`SMALL_DENSE_MACS` multiply-adds per
  pixel (a 256 x 256 matrix), or at most :data:`MAX_DENSE_RATIO` times the structured
  product's (IGCV3's two-branch 1x1s);
* grouped otherwise (IGCV2-1.0's wide chains: a dense 1024 x 1024 product is 4x the work).

Measured with OpenVINO 2026.4 on igc's ONNX export, one thread, interleaved, 2026-12-05
(docs/deployment.md): IGCV3-1.0 7.9 ms against 11.1 ms grouped at batch 1 (362 against
536 ms at batch 32), IGCV2 C64 D20 1.53 against 2.45 ms, IGCV2-1.0 13.4 against 14.2 ms
(496 against 587 ms at batch 32); onnxruntime runs grouped convolutions well and keeps
``"grouped"`` (:data:`igc.deploy.export.ONNX_FORM`).
"""

from __future__ import annotations

from igc.deploy.chain.segments import Segment

#: A dense 1x1 of at most this many multiply-adds per pixel is exported dense.
SMALL_DENSE_MACS = 65536
#: ... or one of at most this many times the structured product's multiply-adds.
MAX_DENSE_RATIO = 2.0


def small_dense_form(segment: Segment) -> tuple[str, str]:
    """``(form, reason)``: ``"dense"`` or ``"grouped"`` for ``segment`` by the rule above."""
    dense, structured = segment.dense_macs(), max(segment.structured_macs(), 1)
    ratio = dense / structured
    small = dense <= SMALL_DENSE_MACS or ratio <= MAX_DENSE_RATIO
    return ("dense" if small else "grouped",
            f"dense 1x1 of {dense} multiply-adds per pixel, {ratio:.2f}x the structured "
            f"({'at most' if small else 'over'} {SMALL_DENSE_MACS} or {MAX_DENSE_RATIO:g}x)")


__all__ = ["MAX_DENSE_RATIO", "SMALL_DENSE_MACS", "small_dense_form"]
