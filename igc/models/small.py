"""Small networks for CPU training on 28x28 grayscale images (Fashion-MNIST, MNIST).

All are IGCV2 networks of the CIFAR family (Table 1 layout: a stem, three stages of ``B``
blocks at widths ``x, 2x, 4x`` with a skip connection around each pair, ``D = 3B + 2``)
whose stem convolution has stride 2, so the stages run at 14x14, 7x7 and 4x4 instead of
28x28, 14x14, 7x7 -- about 4x less work, the decisive saving on a CPU. Each block is the
linear IGCV2 block: a channel-wise 3x3, then two group 1x1 convolutions whose branch sizes
multiply to the width (strictly complementary, L = 3), the second one of 8 channels.

* ``igcv2_fmnist`` (C32, D = 8: 32 = 4 x 8, 64 = 8 x 8, 128 = 16 x 8; 16k parameters):
  the first default network, kept for the training benchmarks (benchmarks/train.py);
* ``igcv2_c48_d11_fmnist`` (C48, D = 11: 48 = 6 x 8, 96 = 12 x 8, 192 = 24 x 8; 40k
  parameters): the network of ``igc train``'s main job (recipe ``fashion-mnist-cpu``);
* ``igcv2_c64_d14_fmnist`` (C64, D = 14: 64 = 8 x 8, 128 = 16 x 8, 256 = 32 x 8; 81k
  parameters): the hour-long recipe ``fashion-mnist-long``.
"""

from __future__ import annotations

from igc.models.cifar import cifar_net
from igc.models.registry import register_model

#: name -> builder keywords of :func:`igc.models.cifar.cifar_net`
SMALL_MODELS = {
    "igcv2_fmnist": dict(block="igcv2", width=32, depth=8,
                         branch_sizes=((4, 8), (8, 8), (16, 8)), stem_stride=2),
    "igcv2_c48_d11_fmnist": dict(block="igcv2", width=48, depth=11,
                                 branch_sizes=((6, 8), (12, 8), (24, 8)), stem_stride=2),
    "igcv2_c64_d14_fmnist": dict(block="igcv2", width=64, depth=14,
                                 branch_sizes=((8, 8), (16, 8), (32, 8)), stem_stride=2),
}

for _name, _kwargs in SMALL_MODELS.items():
    register_model(_name, cifar_net, family="igcv2", table="small (CPU, 28x28)",
                   dataset="fashion-mnist", input_size=28, num_classes=10, in_chans=1,
                   **_kwargs)
