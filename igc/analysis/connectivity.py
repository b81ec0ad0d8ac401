"""Connectivity measured from a built module, to check it against the mathematics.

:func:`measured_path_counts` counts the paths from every input channel to every output
channel of a chain of convolutions by differentiation, without reading its
:class:`~igc.sparsity.KernelProduct`: every convolution weight is set to the same positive
value per layer and every BatchNorm to the identity, so the Jacobian of the centre output
pixel with respect to the centre input pixel is the path count times a known constant.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn


def measured_path_counts(module: nn.Module, in_channels: int, size: int = 5) -> np.ndarray:
    """``(C_out, C_in)`` path counts of ``module`` (a chain without skip connections).

    Works through ReLU/ReLU6 (the probe input is small and positive, so every activation
    is in its linear part) and channel shuffles. ``size`` is the odd spatial size probed.
    """
    probe = copy.deepcopy(module).double().eval()
    scale = 1.0
    for layer in probe.modules():
        if isinstance(layer, nn.Conv2d):
            fan_in = layer.weight[0].numel()
            layer.weight.data.fill_(1.0 / fan_in)
            scale *= fan_in
            if layer.bias is not None:
                layer.bias.data.zero_()
        elif isinstance(layer, nn.BatchNorm2d):
            layer.running_mean.zero_()
            layer.running_var.fill_(1.0)
            layer.eps = 0.0
            layer.weight.data.fill_(1.0)
            layer.bias.data.zero_()
    x = torch.full((1, in_channels, size, size), 1e-3, dtype=torch.float64, requires_grad=True)
    y = probe(x)
    cy, cx = y.shape[2] // 2, y.shape[3] // 2
    rows = []
    for o in range(y.shape[1]):
        (grad,) = torch.autograd.grad(y[0, o, cy, cx], x, retain_graph=True)
        rows.append(grad[0, :, size // 2, size // 2].numpy() * scale)
    return np.rint(np.stack(rows)).astype(np.int64)
