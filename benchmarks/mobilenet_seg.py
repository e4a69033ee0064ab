"""A second CNN for the benchmarks: MobileNetV3-Small with an LR-ASPP head, 256 x 256, 1 class.

The architecture of torchvision's ``lraspp_mobilenet_v3_large`` scaled to the Small backbone
(Howard et al., "Searching for MobileNetV3", 2019: inverted residuals, squeeze-excite with hard
sigmoid, hard-swish; the head gates 1x1 features with a global-pool branch and adds a low-level
classifier), written here because torchvision does not import beside the CPU torch build we
pin. Batch norms are left out (they fold into the convolutions at inference anyway). Weights
are random (seeded, He-initialised), so only latency and agreement between backends mean
anything; the input is NCHW [1, 3, 256, 256] and the output a [1, 1, 256, 256] sigmoid mask.

    .venv/bin/python benchmarks/mobilenet_seg.py OUT.onnx
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# (kernel, expanded, out, squeeze-excite, hard-swish, stride): MobileNetV3-Small's table.
SMALL = [
    (3, 16, 16, True, False, 2),
    (3, 72, 24, False, False, 2),
    (3, 88, 24, False, False, 1),
    (5, 96, 40, True, True, 2),
    (5, 240, 40, True, True, 1),
    (5, 240, 40, True, True, 1),
    (5, 120, 48, True, True, 1),
    (5, 144, 48, True, True, 1),
    (5, 288, 96, True, True, 2),
    (5, 576, 96, True, True, 1),
    (5, 576, 96, True, True, 1),
]
LOW = 2  # the block whose output is the head's low-level input (stride 8, 24 channels)


def build(seed: int = 0, classes: int = 1, head: str = "sigmoid", nhwc: bool = False) -> Any:
    """The network as an ``nn.Module`` in eval mode.

    Args:
        seed: Weight seed.
        classes: Output channels (1: a person map; 2: [background, person]).
        head: ``sigmoid``, ``softmax`` (over the channels) or ``logits`` (none).
        nhwc: Take [1, 256, 256, 3] and return [1, 256, 256, classes] (TFLite-style exports).
    """
    import torch
    from torch import nn
    from torch.nn import functional

    class SqueezeExcite(nn.Module):
        def __init__(self, channels: int) -> None:
            super().__init__()
            squeezed = max(8, (channels // 4 + 4) // 8 * 8)
            self.fc1 = nn.Conv2d(channels, squeezed, 1)
            self.fc2 = nn.Conv2d(squeezed, channels, 1)

        def forward(self, x: Any) -> Any:
            s = functional.adaptive_avg_pool2d(x, 1)
            return x * functional.hardsigmoid(self.fc2(functional.relu(self.fc1(s))))

    class Block(nn.Module):
        def __init__(self, cin: int, k: int, exp: int, out: int, se: bool, hs: bool, s: int):
            super().__init__()
            act: Any = nn.Hardswish if hs else nn.ReLU
            layers: list[Any] = []
            if exp != cin:
                layers += [nn.Conv2d(cin, exp, 1), act()]
            layers += [nn.Conv2d(exp, exp, k, s, k // 2, groups=exp), act()]
            if se:
                layers.append(SqueezeExcite(exp))
            layers.append(nn.Conv2d(exp, out, 1))
            self.body = nn.Sequential(*layers)
            self.residual = s == 1 and cin == out

        def forward(self, x: Any) -> Any:
            y = self.body(x)
            return x + y if self.residual else y

    class LrasppMobileNetV3Small(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.Hardswish())
            blocks, cin = [], 16
            for k, exp, out, se, hs, s in SMALL:
                blocks.append(Block(cin, k, exp, out, se, hs, s))
                cin = out
            self.blocks = nn.ModuleList(blocks)
            self.last = nn.Sequential(nn.Conv2d(cin, 576, 1), nn.Hardswish())
            self.cbr = nn.Sequential(nn.Conv2d(576, 128, 1), nn.ReLU())
            self.scale = nn.Conv2d(576, 128, 1)
            self.low_classifier = nn.Conv2d(SMALL[LOW][2], classes, 1)
            self.high_classifier = nn.Conv2d(128, classes, 1)

        def forward(self, x: Any) -> Any:
            if nhwc:
                x = x.permute(0, 3, 1, 2)
            size = x.shape[-2:]
            y = self.stem(x)
            low = y
            for i, block in enumerate(self.blocks):
                y = block(y)
                if i == LOW:
                    low = y
            high = self.last(y)
            gate = torch.sigmoid(self.scale(functional.adaptive_avg_pool2d(high, 1)))
            y = self.cbr(high) * gate
            y = functional.interpolate(y, size=low.shape[-2:], mode="bilinear")
            y = self.low_classifier(low) + self.high_classifier(y)
            y = functional.interpolate(y, size=size, mode="bilinear")
            if head == "sigmoid":
                y = torch.sigmoid(y)
            elif head == "softmax":
                y = torch.softmax(y, dim=1)
            return y.permute(0, 2, 3, 1) if nhwc else y

    torch.manual_seed(seed)
    net = LrasppMobileNetV3Small().eval()
    with torch.no_grad():  # He initialisation keeps activations near unit scale without BN
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.normal_(m.bias, std=0.1)
    return net


def export(
    path: Path,
    seed: int = 0,
    classes: int = 1,
    head: str = "sigmoid",
    nhwc: bool = False,
    opset: int = 18,
) -> Path:
    """Write the network as ONNX (through edgeopt's PyTorch importer) and return the path."""
    from edgeopt.frontends.torch import convert_torch

    shape = [1, 256, 256, 3] if nhwc else [1, 3, 256, 256]
    net = build(seed, classes, head, nhwc)
    return convert_torch(net, path, [shape], input_names=["image"], opset=opset)


if __name__ == "__main__":
    print(export(Path(sys.argv[1] if len(sys.argv) > 1 else "mobilenet_seg.onnx")))
