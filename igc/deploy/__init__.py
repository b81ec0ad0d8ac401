"""Deployment: the inference form of a network (BatchNorm folded, shuffles deleted by
permutation algebra, 1x1 chains as structured or multiplied-out products), export to ONNX
and ``torch.export`` programs, int8 quantisation, and benchmarking.

``onnx`` and ``onnxruntime`` are optional (``pip install 'igc-torch[export]'``); nothing here
imports them until an ONNX function is called.
"""

from igc.deploy.chain import FORMS, CostModel, FastChain, LoweringError, choose_form
from igc.deploy.fold import fold_batchnorms, fold_bn
from igc.deploy.optimize import (
    MODES,
    BlockForm,
    OptimizedModel,
    block_forms,
    format_block_forms,
    optimize,
)

__all__ = [
    "FORMS", "MODES", "BlockForm", "CostModel", "FastChain", "LoweringError", "OptimizedModel",
    "block_forms", "choose_form",
    "fold_batchnorms", "fold_bn", "format_block_forms", "optimize",
]
