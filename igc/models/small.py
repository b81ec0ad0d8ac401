"""Small networks for CPU training on 28x28 grayscale images (Fashion-MNIST, MNIST).

``igcv2_fmnist`` is the network ``igc train`` trains by default: an IGCV2 network of the
CIFAR family (Table 1 layout, D = 8: a stem and three stages of two blocks with a skip
connection around each pair) whose stem convolution has stride 2, so the stages run at
14x14, 7x7 and 4x4 instead of 28x28, 14x14, 7x7 -- about 4x less work, the decisive
saving on a CPU. Each block is the linear IGCV2 block: channel-wise 3x3, then two group 1x1
convolutions whose branch sizes multiply to the width (strictly complementary, L = 3):
32 = 4 x 8, 64 = 8 x 8, 128 = 16 x 8.
"""

from __future__ import annotations

from igc.models.cifar import cifar_net
from igc.models.registry import register_model

#: name -> builder keywords of :func:`igc.models.cifar.cifar_net`
SMALL_MODELS = {
    "igcv2_fmnist": dict(block="igcv2", width=32, depth=8,
                         branch_sizes=((4, 8), (8, 8), (16, 8)), stem_stride=2),
}

for _name, _kwargs in SMALL_MODELS.items():
    register_model(_name, cifar_net, family="igcv2", table="small (CPU, 28x28)",
                   dataset="fashion-mnist", input_size=28, num_classes=10, in_chans=1,
                   **_kwargs)
