"""Every network of the IGCV2 paper, registered by name (see ``docs/zoo.md``).

The rows below are the paper's tables written as data; the naming convention is the one
documented at the top of ``paper_results.toml``:

* CIFAR family of Table 1 (``D = 3B + 2``): ``{block}_c{x}_d{D}``, CIFAR-100 by default,
  and ``{block}_c{x}_d{D}_tiny`` for Tiny ImageNet (64x64 input, 200 classes, stride-2 stem).
* 8-layer networks without down-sampling (Tables 2, 5): ``{block}_8l_c{x}``.
* ImageNet (Tables 8-11): ``igcv2_{a}``, ``mobilenetv1_{a}``, ``igcv3_{a}``,
  ``mobilenetv2_{a}`` with ``a`` the width multiplier x 100 in three digits (``igcv2_100``,
  ``igcv2_050``, ``igcv3_070``: timm-safe, as timm's ``mobilenetv2_100``); the zoo's first
  names ``igcv2_1.0``, ``igcv2_0.5``, ... stay as aliases.

Imported by ``igc/models/__init__.py``; the registry itself imports nothing of the zoo.
"""

from __future__ import annotations

from igc.models.cifar import cifar_net, eight_layer_net
from igc.models.imagenet import igcv2_imagenet, igcv3, mobilenet_v1, mobilenet_v2
from igc.models.registry import register_model

#: Width of the first convolution of every Xception network of Tables 3 and 4 (section 4.3:
#: "we fix the channel number at the first convolutional layer in Xception as 35").
XCEPTION_STEM = 35

#: Per-stage IGCV2 branch sizes ``K_s`` (both group 1x1 convolutions of a stage).
IGCV2_SIZES = {64: ((8, 8), (16, 16), (32, 32)), 80: ((10, 10), (16, 16), (20, 20))}

#: (block, first-stage width, depths, paper tables) of Tables 3, 4, 6, 7 and Figure 4.
CIFAR_ROWS: tuple[tuple[str, int, tuple[int, ...], str], ...] = (
    ("xception", 35, (8, 20, 26), "4"),
    ("xception", 58, (20,), "3"),
    ("xception", 71, (20,), "3"),
    ("xception", 83, (20,), "3"),
    ("igcv1", 48, (8, 20, 26), "6"),
    ("igcv1", 96, (20,), "3"),
    ("igcv1", 126, (20,), "3"),
    ("igcv1", 150, (20,), "3"),
    ("igcv2", 64, (8, 20, 26), "4"),
    ("igcv2", 80, (8, 20, 26), "6"),
    ("igcv2star", 216, (20,), "3"),
    ("igcv2star", 304, (20,), "3"),
    ("igcv2star", 416, (20,), "3, 7"),
    *(("igcv2star", x, (20,), "fig 4a") for x in (112, 136, 160, 192, 256)),
    ("igcv2star", 64, (38, 50, 62, 74, 98), "fig 4b"),
)

#: (name, block, width, 1x1 branch sizes, extra block options, table) of Tables 2 and 5.
EIGHT_LAYER_ROWS: tuple[tuple[str, str, int, tuple[int, ...] | None, dict, str], ...] = (
    ("xception_8l_c64", "xception", 64, None, {}, "2"),
    ("xception_8l_c96", "xception", 96, None, {}, "2"),
    ("xception_8l_c128", "xception", 128, None, {}, "2"),
    ("igcv2_8l_c144", "igcv2", 144, (12, 12), {}, "2"),
    ("igcv2_8l_c256", "igcv2", 256, (16, 16), {}, "2"),
    ("igcv2_8l_c361", "igcv2", 361, (19, 19), {}, "2"),
    ("igcv1_8l_c64", "igcv1", 64, None, {}, "5"),
    ("igcv1_8l_c96", "igcv1", 96, None, {}, "5"),
    ("igcv1_8l_c128", "igcv1", 128, None, {}, "5"),
    ("igcv2i_8l_c98", "igcv2i", 98, (7, 7), {}, "5"),
    ("igcv2i_8l_c162", "igcv2i", 162, (9, 9), {}, "5"),
    ("igcv2i_8l_c242", "igcv2i", 242, (11, 11), {}, "5"),
    ("igcv2ii_8l_c100", "igcv2ii", 100, (10, 10), {}, "5"),
    ("igcv2ii_8l_c169", "igcv2ii", 169, (13, 13), {}, "5"),
    ("igcv2ii_8l_c256", "igcv2ii", 256, (16, 16), {}, "5"),
)

#: (family, builder, width multipliers, tables) of Tables 8-11.
IMAGENET_ROWS = (
    ("igcv2", igcv2_imagenet, ("1.0", "0.5", "0.25"), "8, 9"),
    ("mobilenetv1", mobilenet_v1, ("1.0", "0.5", "0.25"), "8, 9"),
    ("igcv3", igcv3, ("1.0", "0.7"), "10, 11"),
    ("mobilenetv2", mobilenet_v2, ("1.0", "0.7"), "10, 11"),
)


def imagenet_name(family: str, alpha: str) -> str:
    """``("igcv2", "0.5") -> "igcv2_050"``: the multiplier x 100 in three digits."""
    return f"{family}_{round(float(alpha) * 100):03d}"


def _register_all() -> None:
    for block, width, depths, table in CIFAR_ROWS:
        sizes = IGCV2_SIZES.get(width) if block == "igcv2" else None
        for depth in depths:
            name = f"{block}_c{width}_d{depth}"
            common = dict(block=block, width=width, depth=depth, branch_sizes=sizes)
            if block == "xception":
                common["stem_width"] = XCEPTION_STEM
            register_model(name, cifar_net, family=block, table=table, dataset="cifar100",
                           input_size=32, num_classes=100, **common)
            register_model(f"{name}_tiny", cifar_net, family=block, table=table,
                           dataset="tiny-imagenet", input_size=64, num_classes=200,
                           stem_stride=2, **common)
    for name, block, width, sizes, options, table in EIGHT_LAYER_ROWS:
        register_model(name, eight_layer_net, family=f"{block}-8l", table=table,
                       dataset="cifar100", input_size=32, num_classes=100, block=block,
                       width=width, branch_sizes=sizes, **options)
    for family, builder, alphas, table in IMAGENET_ROWS:
        for alpha in alphas:
            register_model(imagenet_name(family, alpha), builder, family=family, table=table,
                           dataset="imagenet", input_size=224, num_classes=1000,
                           aliases=(f"{family}_{alpha}",), alpha=float(alpha))


_register_all()
