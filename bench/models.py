#!/usr/bin/env python3
"""Generate the benchmark suite's models: real architectures at real size, random weights.

    .venv/bin/python bench/models.py [--out .cache/bench-models] [--models a,b]   # (re)write the cache
    .venv/bin/python bench/models.py --check     # regenerate into a temp dir, compare with MANIFEST.json
    .venv/bin/python bench/models.py --bless     # regenerate and rewrite bench/MANIFEST.json
    .venv/bin/python bench/models.py --list

For each model NAME it writes, in the ONNX test-set layout (so `kiln bench`/`kiln run` and
scripts/bench_ort.py read them as they are):

    <out>/NAME/model.onnx
    <out>/NAME/test_data_set_0/input_<i>.pb      (the random inputs every engine is timed on)

The cache (`.cache/bench-models/`, about 600 MB, ResNet-50 alone about 100 MB) is not committed;
bench/MANIFEST.json is: the sha256 and size of every file, the ops, the parameter count.

Invariants:
- No downloads. Every model is built with onnx.helper from its own seeded numpy Generator, so the
  same seed gives byte-identical files (`--check` proves it against the committed manifest), and
  adding or changing one model never changes another.
- The graphs look like what exporters write, because Kiln's optimizer must recognize real
  patterns: opset 17, IR version 8, fp32, batch 1 unless the name says otherwise; PyTorch's
  export conventions (eval-mode Conv+BatchNorm folded into the Conv's weights and bias except where
  noted, ReLU6 as Clip with constant min/max inputs, nn.Linear on 2-D input as Gemm with transB=1
  and on 3-D input as MatMul + Add, scalars and shapes as Constant nodes, exact-erf GELU and
  LayerNorm decomposed into primitive ops, node names like `/layer1/layer1.0/conv1/Conv`).
- Weights are initialized the way the frameworks do (He/Kaiming for convolutions, 1/sqrt(fan_in)
  for linear layers, N(0, 0.02) for BERT), so activations stay O(1) through 50 layers and the
  outputs are neither all zero nor overflowing: a comparison with ONNX Runtime is meaningful.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = ROOT / ".cache" / "bench-models"
MANIFEST = Path(__file__).resolve().parent / "MANIFEST.json"
F32 = np.float32


class Graph:
    """A tiny exporter: collects nodes, initializers and Constant nodes with exporter-style names."""

    def __init__(self, name: str, seed: int) -> None:
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._names: dict[str, int] = {}

    # --- values ---------------------------------------------------------------------------------

    def _unique(self, name: str) -> str:
        n = self._names.get(name, 0)
        self._names[name] = n + 1
        return name if n == 0 else f"{name}_{n}"

    def init(self, name: str, array: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def normal(self, name: str, shape: tuple[int, ...], std: float, mean: float = 0.0) -> str:
        a = self.rng.standard_normal(shape, dtype=F32) * F32(std)
        if mean:
            a += F32(mean)
        return self.init(name, a)

    def uniform(self, name: str, shape: tuple[int, ...], lo: float, hi: float) -> str:
        return self.init(name, self.rng.uniform(lo, hi, shape).astype(F32))

    def const(self, scope: str, value: np.ndarray | float) -> str:
        """A Constant node, as torch.onnx writes scalars and shape vectors."""
        arr = np.asarray(value, dtype=F32) if isinstance(value, float) else np.asarray(value)
        out = self._unique(f"{scope}/Constant") + "_output_0"
        self.nodes.append(
            helper.make_node("Constant", [], [out], name=out[: -len("_output_0")], value=numpy_helper.from_array(arr))
        )
        return out

    def input(self, name: str, dtype: int, shape: list[int]) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, dtype, shape))
        return name

    def output(self, value: str, name: str, shape: list[int]) -> None:
        """Names the graph output as exporters do: the producing node's output is renamed."""
        for n in self.nodes:
            n.output[:] = [name if o == value else o for o in n.output]
            n.input[:] = [name if i == value else i for i in n.input]
        self.outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))

    def node(self, op: str, inputs: list[str], scope: str, outputs: int | list[str] = 1, **attrs) -> str | list[str]:
        name = self._unique(f"{scope}/{op}")
        outs = outputs if isinstance(outputs, list) else [f"{name}_output_{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=name, **attrs))
        return outs[0] if len(outs) == 1 else outs

    # --- layers, PyTorch-export style -----------------------------------------------------------

    def conv(
        self,
        x: str,
        scope: str,
        prefix: str,
        cin: int,
        cout: int,
        k: int,
        stride: int = 1,
        pad: int = 0,
        groups: int = 1,
        bias: bool = True,
        gain: float = 2.0,
    ) -> str:
        """Conv with He-normal weights (std sqrt(gain / fan_in)); bias=True stands for a Conv whose
        BatchNorm the exporter folded in (a small random bias)."""
        fan_in = cin // groups * k * k
        w = self.normal(f"{prefix}.weight", (cout, cin // groups, k, k), math.sqrt(gain / fan_in))
        ins = [x, w]
        if bias:
            ins.append(self.normal(f"{prefix}.bias", (cout,), 0.05))
        return self.node(
            "Conv",
            ins,
            scope,
            dilations=[1, 1],
            group=groups,
            kernel_shape=[k, k],
            pads=[pad] * 4,
            strides=[stride, stride],
        )

    def batchnorm(self, x: str, scope: str, prefix: str, c: int, gamma: tuple[float, float] = (0.8, 1.2)) -> str:
        """Eval-mode BatchNormalization with plausible running statistics."""
        ins = [
            x,
            self.uniform(f"{prefix}.weight", (c,), *gamma),
            self.normal(f"{prefix}.bias", (c,), 0.05),
            self.normal(f"{prefix}.running_mean", (c,), 0.05),
            self.uniform(f"{prefix}.running_var", (c,), 0.8, 1.6),
        ]
        return self.node("BatchNormalization", ins, scope, epsilon=1e-5, momentum=0.9)

    def relu(self, x: str, scope: str) -> str:
        return self.node("Relu", [x], scope)

    def relu6(self, x: str, scope: str) -> str:
        """nn.ReLU6 as torch.onnx writes it from opset 11: Clip with constant min/max inputs."""
        return self.node("Clip", [x, self.const(scope, 0.0), self.const(scope, 6.0)], scope)

    def maxpool(self, x: str, scope: str, k: int, stride: int, pad: int = 0, ceil: bool = False) -> str:
        return self.node(
            "MaxPool",
            [x],
            scope,
            ceil_mode=int(ceil),
            dilations=[1, 1],
            kernel_shape=[k, k],
            pads=[pad] * 4,
            strides=[stride, stride],
        )

    def gemm(self, x: str, scope: str, prefix: str, fin: int, fout: int) -> str:
        """nn.Linear on a 2-D input: Gemm(x, W[out, in], b, transB=1), PyTorch's default init."""
        bound = 1.0 / math.sqrt(fin)
        w = self.uniform(f"{prefix}.weight", (fout, fin), -bound, bound)
        b = self.uniform(f"{prefix}.bias", (fout,), -bound, bound)
        return self.node("Gemm", [x, w, b], scope, alpha=1.0, beta=1.0, transB=1)

    def linear(self, x: str, scope: str, prefix: str, fin: int, fout: int, std: float | None = None) -> str:
        """nn.Linear on an N-D input: MatMul(x, W^T as a [in, out] initializer) + Add(bias)."""
        if std is None:
            bound = 1.0 / math.sqrt(fin)
            w = self.uniform(f"{prefix}.weight.T", (fin, fout), -bound, bound)
            b = self.uniform(f"{prefix}.bias", (fout,), -bound, bound)
        else:
            w = self.normal(f"{prefix}.weight.T", (fin, fout), std)
            b = self.normal(f"{prefix}.bias", (fout,), std)
        mm = self.node("MatMul", [x, w], scope)
        return self.node("Add", [b, mm], scope)

    def layernorm(self, x: str, scope: str, prefix: str, hidden: int, eps: float = 1e-12) -> str:
        """LayerNorm over the last axis decomposed as torch.onnx writes it below opset 17's op:
        ReduceMean, Sub, Pow 2, ReduceMean, Add eps, Sqrt, Div, Mul gamma, Add beta."""
        gamma = self.uniform(f"{prefix}.weight", (hidden,), 0.9, 1.1)
        beta = self.normal(f"{prefix}.bias", (hidden,), 0.02)
        mean = self.node("ReduceMean", [x], scope, axes=[-1], keepdims=1)
        d = self.node("Sub", [x, mean], scope)
        sq = self.node("Pow", [d, self.const(scope, 2.0)], scope)
        var = self.node("ReduceMean", [sq], scope, axes=[-1], keepdims=1)
        ve = self.node("Add", [var, self.const(scope, eps)], scope)
        std = self.node("Sqrt", [ve], scope)
        n = self.node("Div", [d, std], scope)
        m = self.node("Mul", [n, gamma], scope)
        return self.node("Add", [m, beta], scope)

    def gelu(self, x: str, scope: str) -> str:
        """Exact GELU as transformers' exports write it: x * 0.5 * (1 + erf(x / sqrt(2)))
        in the order Div, Erf, Add, Mul, Mul."""
        d = self.node("Div", [x, self.const(scope, 1.4142135381698608)], scope)
        e = self.node("Erf", [d], scope)
        a = self.node("Add", [e, self.const(scope, 1.0)], scope)
        m = self.node("Mul", [x, a], scope)
        return self.node("Mul", [m, self.const(scope, 0.5)], scope)

    def image(self) -> str:
        """The ImageNet models' input: one 224x224 RGB image."""
        return self.input("input", TensorProto.FLOAT, [1, 3, 224, 224])

    def classify(self, y: str, pool_scope: str, fc: tuple[str, str, int] | None) -> list[np.ndarray]:
        """The torchvision head: GlobalAveragePool, Flatten, then (fc = (scope, prefix, inputs))
        Gemm to 1000 logits; returns the random test image."""
        y = self.node("GlobalAveragePool", [y], pool_scope)
        y = self.node("Flatten", [y], "", axis=1)
        if fc is not None:
            y = self.gemm(y, fc[0], fc[1], fc[2], 1000)
        self.output(y, "logits", [1, 1000])
        return [self.rng.standard_normal((1, 3, 224, 224), dtype=F32)]

    # --- the model ------------------------------------------------------------------------------

    def model(self) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, initializer=self.inits)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_operatorsetid("", OPSET)],
            producer_name="kiln-bench-models",
            producer_version="1",
        )
        model.ir_version = IR_VERSION
        # full_check runs strict shape inference: every exporter-style pattern must type-check.
        onnx.checker.check_model(model, full_check=True)
        return model


# --- CNNs -------------------------------------------------------------------------------------


def resnet50(g: Graph) -> list[np.ndarray]:
    """ResNet-50 in torchvision's layout: 7x7/2 stem Conv+BatchNorm+Relu, 3x3/2 MaxPool, bottleneck
    blocks 3-4-6-3 (1x1, 3x3 carrying the stride as torchvision does, 1x1 x4; BatchNorm after each
    conv, a 1x1/stride projection with BatchNorm on the first block of each stage), residual Add +
    Relu, GlobalAveragePool, Flatten, Gemm 2048->1000. BatchNormalization stays a separate node (an
    export without the eval-mode Conv+BN folding, as in the ONNX model zoo's ResNets), so the
    compiler's own folding is exercised. The last BatchNorm of each block has a small gamma (the
    zero-init-residual idea) so the residual stream stays O(1) over 16 blocks."""
    x = g.image()
    y = g.conv(x, "/conv1", "conv1", 3, 64, 7, 2, 3, bias=False)
    y = g.relu(g.batchnorm(y, "/bn1", "bn1", 64), "/relu")
    y = g.maxpool(y, "/maxpool", 3, 2, 1)
    cin = 64
    for li, (planes, blocks, stride) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], 1):
        for bi in range(blocks):
            s = stride if bi == 0 else 1
            p, sc = f"layer{li}.{bi}", f"/layer{li}/layer{li}.{bi}"
            h = g.relu(
                g.batchnorm(
                    g.conv(y, f"{sc}/conv1", f"{p}.conv1", cin, planes, 1, bias=False), f"{sc}/bn1", f"{p}.bn1", planes
                ),
                f"{sc}/relu",
            )
            h = g.conv(h, f"{sc}/conv2", f"{p}.conv2", planes, planes, 3, s, 1, bias=False)
            h = g.relu(g.batchnorm(h, f"{sc}/bn2", f"{p}.bn2", planes), f"{sc}/relu_1")
            h = g.conv(h, f"{sc}/conv3", f"{p}.conv3", planes, planes * 4, 1, bias=False)
            h = g.batchnorm(h, f"{sc}/bn3", f"{p}.bn3", planes * 4, gamma=(0.2, 0.4))
            if bi == 0:
                idt = g.conv(y, f"{sc}/downsample/downsample.0", f"{p}.downsample.0", cin, planes * 4, 1, s, bias=False)
                idt = g.batchnorm(
                    idt, f"{sc}/downsample/downsample.1", f"{p}.downsample.1", planes * 4, gamma=(0.4, 0.6)
                )
            else:
                idt = y
            y = g.relu(g.node("Add", [h, idt], sc), f"{sc}/relu_2")
            cin = planes * 4
    return g.classify(y, "/avgpool", ("/fc", "fc", 2048))


def mobilenet_v2(g: Graph) -> list[np.ndarray]:
    """MobileNetV2 (torchvision, width 1.0, 224x224), exported in eval mode: BatchNorm folded into
    every Conv, ReLU6 as Clip(0, 6). Stem 3x3/2 to 32, inverted residual blocks (expand 1x1 + Clip,
    depthwise 3x3 + Clip, linear 1x1 projection, Add when stride 1 and channels match) with
    (t, c, n, s) = (1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,4,2) (6,96,3,1) (6,160,3,2) (6,320,1,1),
    1x1 to 1280 + Clip, GlobalAveragePool, Flatten, Gemm 1280->1000."""
    x = g.image()
    y = g.relu6(
        g.conv(x, "/features/features.0/features.0.0", "features.0.0", 3, 32, 3, 2, 1),
        "/features/features.0/features.0.2",
    )
    cin, idx = 32, 1
    for t, c, n, s in [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = cin * t
            sc, p = f"/features/features.{idx}/conv", f"features.{idx}.conv"
            h, j = y, 0
            if t != 1:
                h = g.relu6(g.conv(h, f"{sc}/conv.0/conv.0.0", f"{p}.0.0", cin, hidden, 1), f"{sc}/conv.0/conv.0.2")
                j = 1
            h = g.conv(h, f"{sc}/conv.{j}/conv.{j}.0", f"{p}.{j}.0", hidden, hidden, 3, stride, 1, groups=hidden)
            h = g.relu6(h, f"{sc}/conv.{j}/conv.{j}.2")
            # The linear bottleneck: no activation, so keep the variance instead of doubling it.
            h = g.conv(h, f"{sc}/conv.{j + 1}", f"{p}.{j + 1}", hidden, c, 1, gain=0.5)
            y = g.node("Add", [y, h], f"/features/features.{idx}") if stride == 1 and cin == c else h
            cin, idx = c, idx + 1
    y = g.relu6(
        g.conv(y, f"/features/features.{idx}/features.{idx}.0", f"features.{idx}.0", cin, 1280, 1),
        f"/features/features.{idx}/features.{idx}.2",
    )
    return g.classify(y, "", ("/classifier/classifier.1", "classifier.1", 1280))


def squeezenet1_1(g: Graph) -> list[np.ndarray]:
    """SqueezeNet 1.1 (torchvision): Conv 3x3/2 to 64 + Relu, MaxPool 3/2 with ceil_mode, eight
    Fire modules (squeeze 1x1 + Relu; expand 1x1 and 3x3 + Relu; Concat on channels) with two more
    ceil-mode MaxPools, then Conv 1x1 to 1000 + Relu, GlobalAveragePool, Flatten."""
    x = g.image()
    y = g.relu(g.conv(x, "/features/features.0", "features.0", 3, 64, 3, 2), "/features/features.1")
    cin = 64
    fires = {
        3: (16, 64),
        4: (16, 64),
        6: (32, 128),
        7: (32, 128),
        9: (48, 192),
        10: (48, 192),
        11: (64, 256),
        12: (64, 256),
    }
    for i in range(2, 13):
        if i in (2, 5, 8):
            y = g.maxpool(y, f"/features/features.{i}", 3, 2, ceil=True)
            continue
        sq, ex = fires[i]
        sc, p = f"/features/features.{i}", f"features.{i}"
        s = g.relu(g.conv(y, f"{sc}/squeeze", f"{p}.squeeze", cin, sq, 1), f"{sc}/squeeze_activation")
        e1 = g.relu(g.conv(s, f"{sc}/expand1x1", f"{p}.expand1x1", sq, ex, 1), f"{sc}/expand1x1_activation")
        e3 = g.relu(g.conv(s, f"{sc}/expand3x3", f"{p}.expand3x3", sq, ex, 3, 1, 1), f"{sc}/expand3x3_activation")
        y = g.node("Concat", [e1, e3], sc, axis=1)
        cin = 2 * ex
    y = g.relu(g.conv(y, "/classifier/classifier.1", "classifier.1", 512, 1000, 1), "/classifier/classifier.2")
    return g.classify(y, "/classifier/classifier.3", None)


def shufflenet_v2(g: Graph) -> list[np.ndarray]:
    """ShuffleNet v2 x1.0 (torchvision), BatchNorm folded: Conv 3x3/2 to 24 + Relu, MaxPool 3/2,
    stages of 4, 8, 4 blocks to 116, 232, 464 channels (stride-2 blocks: two branches with
    depthwise 3x3/2; stride-1 blocks: Split in halves, one branch 1x1 + depthwise 3x3 + 1x1;
    Concat, then the channel shuffle as Reshape-Transpose-Reshape), 1x1 to 1024 + Relu,
    ReduceMean over H, W (x.mean([2, 3])), Gemm 1024->1000."""
    x = g.image()
    y = g.relu(g.conv(x, "/conv1/conv1.0", "conv1.0", 3, 24, 3, 2, 1), "/conv1/conv1.2")
    y = g.maxpool(y, "/maxpool", 3, 2, 1)
    cin, hw = 24, 56

    def branch2(h: str, sc: str, p: str, cin: int, bf: int, stride: int) -> str:
        h = g.relu(g.conv(h, f"{sc}/branch2/branch2.0", f"{p}.branch2.0", cin, bf, 1), f"{sc}/branch2/branch2.2")
        h = g.conv(h, f"{sc}/branch2/branch2.3", f"{p}.branch2.3", bf, bf, 3, stride, 1, groups=bf, gain=1.0)
        return g.relu(g.conv(h, f"{sc}/branch2/branch2.5", f"{p}.branch2.5", bf, bf, 1), f"{sc}/branch2/branch2.7")

    for si, (reps, cout) in enumerate([(4, 116), (8, 232), (4, 464)], 2):
        for bi in range(reps):
            sc, p = f"/stage{si}/stage{si}.{bi}", f"stage{si}.{bi}"
            bf = cout // 2
            if bi == 0:
                hw //= 2
                b1 = g.conv(y, f"{sc}/branch1/branch1.0", f"{p}.branch1.0", cin, cin, 3, 2, 1, groups=cin, gain=1.0)
                b1 = g.relu(
                    g.conv(b1, f"{sc}/branch1/branch1.2", f"{p}.branch1.2", cin, bf, 1), f"{sc}/branch1/branch1.4"
                )
                b2 = branch2(y, sc, p, cin, bf, 2)
                cat = g.node("Concat", [b1, b2], sc, axis=1)
            else:
                x1, x2 = g.node("Split", [y, g.const(sc, np.array([bf, bf], np.int64))], sc, outputs=2, axis=1)
                cat = g.node("Concat", [x1, branch2(x2, sc, p, bf, bf, 1)], sc, axis=1)
            # channel_shuffle(x, 2): view(b, 2, c/2, h, w), transpose(1, 2), view(b, c, h, w)
            r = g.node("Reshape", [cat, g.const(sc, np.array([1, 2, bf, hw, hw], np.int64))], sc)
            t = g.node("Transpose", [r], sc, perm=[0, 2, 1, 3, 4])
            y = g.node("Reshape", [t, g.const(sc, np.array([1, cout, hw, hw], np.int64))], sc)
            cin = cout
    y = g.relu(g.conv(y, "/conv5/conv5.0", "conv5.0", 464, 1024, 1), "/conv5/conv5.2")
    y = g.node("ReduceMean", [y], "", axes=[2, 3], keepdims=0)
    y = g.gemm(y, "/fc", "fc", 1024, 1000)
    g.output(y, "logits", [1, 1000])
    return [g.rng.standard_normal((1, 3, 224, 224), dtype=F32)]


def googlenet(g: Graph) -> list[np.ndarray]:
    """Inception v1 / GoogLeNet (torchvision's layout, eval mode, no aux heads, BatchNorm folded):
    Conv 7x7/2 to 64, ceil-mode MaxPools, Conv 1x1 64 and 3x3 192, nine Inception modules (1x1;
    1x1 -> 3x3; 1x1 -> 5x5 as in the paper, where torchvision uses a 3x3; MaxPool 3/1 -> 1x1;
    Concat), GlobalAveragePool, Flatten, Gemm 1024->1000. Every conv is followed by Relu."""
    x = g.image()

    def basic(h: str, name: str, cin: int, cout: int, k: int, stride: int = 1, pad: int = 0) -> str:
        sc = "/" + name.replace(".", "/")
        return g.relu(g.conv(h, f"{sc}/conv", f"{name}.conv", cin, cout, k, stride, pad), sc)

    y = basic(x, "conv1", 3, 64, 7, 2, 3)
    y = g.maxpool(y, "/maxpool1", 3, 2, ceil=True)
    y = basic(y, "conv2", 64, 64, 1)
    y = basic(y, "conv3", 64, 192, 3, 1, 1)
    y = g.maxpool(y, "/maxpool2", 3, 2, ceil=True)
    cin = 192
    blocks = [
        ("inception3a", 64, 96, 128, 16, 32, 32),
        ("inception3b", 128, 128, 192, 32, 96, 64),
        "maxpool3",
        ("inception4a", 192, 96, 208, 16, 48, 64),
        ("inception4b", 160, 112, 224, 24, 64, 64),
        ("inception4c", 128, 128, 256, 24, 64, 64),
        ("inception4d", 112, 144, 288, 32, 64, 64),
        ("inception4e", 256, 160, 320, 32, 128, 128),
        "maxpool4",
        ("inception5a", 256, 160, 320, 32, 128, 128),
        ("inception5b", 384, 192, 384, 48, 128, 128),
    ]
    for b in blocks:
        if b == "maxpool3":
            y = g.maxpool(y, "/maxpool3", 3, 2, ceil=True)
            continue
        if b == "maxpool4":
            y = g.maxpool(y, "/maxpool4", 2, 2, ceil=True)
            continue
        n, c1, c3r, c3, c5r, c5, cp = b
        b1 = basic(y, f"{n}.branch1", cin, c1, 1)
        b2 = basic(basic(y, f"{n}.branch2.0", cin, c3r, 1), f"{n}.branch2.1", c3r, c3, 3, 1, 1)
        b3 = basic(basic(y, f"{n}.branch3.0", cin, c5r, 1), f"{n}.branch3.1", c5r, c5, 5, 1, 2)
        b4 = basic(g.maxpool(y, f"/{n}/branch4/branch4.0", 3, 1, 1, ceil=True), f"{n}.branch4.1", cin, cp, 1)
        y = g.node("Concat", [b1, b2, b3, b4], f"/{n}", axis=1)
        cin = c1 + c3 + c5 + cp
    return g.classify(y, "/avgpool", ("/fc", "fc", 1024))


def dcgan_generator(g: Graph) -> list[np.ndarray]:
    """The DCGAN generator (Radford et al.; PyTorch's DCGAN example with nz=100, ngf=64, nc=3) at
    batch 16: ConvTranspose 4x4 from the 1x1 latent to 4x4x512, then four 4x4/2 ConvTransposes
    with padding 1 (8x8x256, 16x16x128, 32x32x64, 64x64x3), none with bias; BatchNormalization +
    Relu after all but the last, Tanh at the end. BatchNormalization stays a separate node (the
    exporter folds it into Conv, not ConvTranspose). Weights He-normal over the inputs each output
    value sums (cin * 16 / stride^2), so activations stay O(1) as in a trained generator (the
    paper's N(0, 0.02) init would shrink them layer by layer)."""
    batch, nz, ngf = 16, 100, 64
    x = g.input("latent", TensorProto.FLOAT, [batch, nz, 1, 1])
    chans = [nz, ngf * 8, ngf * 4, ngf * 2, ngf, 3]
    y = x
    for i in range(5):
        cin, cout = chans[i], chans[i + 1]
        sc, prefix = f"/main/main.{3 * i}", f"main.{3 * i}"
        stride, pad = (1, 0) if i == 0 else (2, 1)
        w = g.normal(f"{prefix}.weight", (cin, cout, 4, 4), math.sqrt(2.0 / (cin * 16 // stride**2)))
        y = g.node(
            "ConvTranspose",
            [y, w],
            f"{sc}/ConvTranspose",
            dilations=[1, 1],
            group=1,
            kernel_shape=[4, 4],
            pads=[pad] * 4,
            strides=[stride, stride],
        )
        if i < 4:
            y = g.batchnorm(y, f"/main/main.{3 * i + 1}", f"main.{3 * i + 1}", cout, (0.8, 1.2))
            y = g.relu(y, f"/main/main.{3 * i + 2}")
        else:
            y = g.node("Tanh", [y], f"/main/main.{3 * i + 1}")
    g.output(y, "image", [batch, 3, 64, 64])
    return [g.rng.standard_normal((batch, nz, 1, 1), dtype=F32)]


# --- transformers -----------------------------------------------------------------------------


def bert_layer(g: Graph, x: str, mask: str, i: int, hidden: int, heads: int, ffn: int, seq: int) -> str:
    """One BertLayer (post-LN) as transformers' exports write it: Q/K/V as MatMul + Add, Reshape to
    [1, seq, heads, d] and Transpose to heads (K straight to [1, heads, d, seq]), MatMul QK^T, Div by
    sqrt(d), Add the additive mask, Softmax, MatMul V, Transpose + Reshape back, output projection,
    residual Add, LayerNorm; FFN MatMul + Add, exact GELU, MatMul + Add, residual, LayerNorm."""
    d = hidden // heads
    p, sc = f"encoder.layer.{i}", f"/encoder/layer.{i}"
    att = f"{sc}/attention/self"
    split = g.const(att, np.array([1, seq, heads, d], np.int64))
    q = g.node(
        "Transpose",
        [
            g.node(
                "Reshape", [g.linear(x, f"{att}/query", f"{p}.attention.self.query", hidden, hidden, 0.02), split], att
            )
        ],
        att,
        perm=[0, 2, 1, 3],
    )
    k = g.node(
        "Transpose",
        [g.node("Reshape", [g.linear(x, f"{att}/key", f"{p}.attention.self.key", hidden, hidden, 0.02), split], att)],
        att,
        perm=[0, 2, 3, 1],
    )
    v = g.node(
        "Transpose",
        [
            g.node(
                "Reshape", [g.linear(x, f"{att}/value", f"{p}.attention.self.value", hidden, hidden, 0.02), split], att
            )
        ],
        att,
        perm=[0, 2, 1, 3],
    )
    s = g.node("MatMul", [q, k], att)
    s = g.node("Div", [s, g.const(att, float(math.sqrt(d)))], att)
    s = g.node("Add", [s, mask], att)
    s = g.node("Softmax", [s], att, axis=-1)
    c = g.node("MatMul", [s, v], att)
    c = g.node("Transpose", [c], att, perm=[0, 2, 1, 3])
    c = g.node("Reshape", [c, g.const(att, np.array([1, seq, hidden], np.int64))], att)
    out = f"{sc}/attention/output"
    h = g.linear(c, f"{out}/dense", f"{p}.attention.output.dense", hidden, hidden, 0.02)
    h = g.node("Add", [h, x], out)
    h = g.layernorm(h, f"{out}/LayerNorm", f"{p}.attention.output.LayerNorm", hidden)
    f = g.linear(h, f"{sc}/intermediate/dense", f"{p}.intermediate.dense", hidden, ffn, 0.02)
    f = g.gelu(f, f"{sc}/intermediate/intermediate_act_fn")
    f = g.linear(f, f"{sc}/output/dense", f"{p}.output.dense", ffn, hidden, 0.02)
    f = g.node("Add", [f, h], f"{sc}/output")
    return g.layernorm(f, f"{sc}/output/LayerNorm", f"{p}.output.LayerNorm", hidden)


def padding_mask(seq: int, pad: int) -> np.ndarray:
    """An attention mask with the last `pad` positions padded, as a tokenizer returns it."""
    m = np.ones((1, seq), np.int64)
    m[0, seq - pad :] = 0
    return m


def bert_base_layer(g: Graph) -> list[np.ndarray]:
    """One BERT-base encoder layer (hidden 768, 12 heads, FFN 3072, seq 128, batch 1) exported
    alone: inputs are the hidden states and the extended additive mask [1, 1, 1, 128] (0 where
    attended, float32 min where padded), as BertLayer receives them."""
    seq, hidden = 128, 768
    x = g.input("hidden_states", TensorProto.FLOAT, [1, seq, hidden])
    mask = g.input("attention_mask", TensorProto.FLOAT, [1, 1, 1, seq])
    y = bert_layer(g, x, mask, 0, hidden, 12, 3072, seq)
    g.output(y, "last_hidden_state", [1, seq, hidden])
    ext = ((1.0 - padding_mask(seq, 16)) * np.finfo(F32).min).astype(F32).reshape(1, 1, 1, seq)
    return [g.rng.standard_normal((1, seq, hidden), dtype=F32), ext]


def bert_4l_256(g: Graph) -> list[np.ndarray]:
    """A 4-layer BERT (hidden 256, 4 heads, FFN 1024, seq 128, vocabulary 30522) from token ids:
    word, token-type (the all-zero buffer) and position embeddings as Gathers, Add, LayerNorm; the
    extended mask from the int64 attention_mask as transformers builds it (Unsqueeze, Cast,
    Sub from 1, Mul by float32 min); four BertLayers."""
    seq, hidden, vocab = 128, 256, 30522
    ids = g.input("input_ids", TensorProto.INT64, [1, seq])
    am = g.input("attention_mask", TensorProto.INT64, [1, seq])
    emb = "/embeddings"
    word = g.node(
        "Gather", [g.normal("embeddings.word_embeddings.weight", (vocab, hidden), 0.02), ids], f"{emb}/word_embeddings"
    )
    tt = g.node(
        "Gather",
        [
            g.normal("embeddings.token_type_embeddings.weight", (2, hidden), 0.02),
            g.const(emb, np.zeros((1, seq), np.int64)),
        ],
        f"{emb}/token_type_embeddings",
    )
    pos = g.node(
        "Gather",
        [
            g.normal("embeddings.position_embeddings.weight", (512, hidden), 0.02),
            g.const(emb, np.arange(seq, dtype=np.int64).reshape(1, seq)),
        ],
        f"{emb}/position_embeddings",
    )
    x = g.node("Add", [g.node("Add", [word, tt], emb), pos], emb)
    x = g.layernorm(x, f"{emb}/LayerNorm", "embeddings.LayerNorm", hidden)
    m = g.node("Unsqueeze", [am, g.const("", np.array([1, 2], np.int64))], "")
    m = g.node("Cast", [m], "", to=TensorProto.FLOAT)
    m = g.node("Sub", [g.const("", 1.0), m], "")
    m = g.node("Mul", [m, g.const("", float(np.finfo(F32).min))], "")
    for i in range(4):
        x = bert_layer(g, x, m, i, hidden, 4, 1024, seq)
    g.output(x, "last_hidden_state", [1, seq, hidden])
    return [g.rng.integers(0, vocab, (1, seq), dtype=np.int64), padding_mask(seq, 16)]


# --- MLP and plain contractions ---------------------------------------------------------------


def mlp(batch: int) -> Callable[[Graph], list[np.ndarray]]:
    def build(g: Graph) -> list[np.ndarray]:
        """MLP 784-512-512-10 as MatMul + Add (+ Relu), weights [in, out]."""
        x = g.input("input", TensorProto.FLOAT, [batch, 784])
        y = g.relu(g.linear(x, "/fc1", "fc1", 784, 512), "/relu1")
        y = g.relu(g.linear(y, "/fc2", "fc2", 512, 512), "/relu2")
        y = g.linear(y, "/fc3", "fc3", 512, 10)
        g.output(y, "logits", [batch, 10])
        return [g.rng.standard_normal((batch, 784), dtype=F32)]

    return build


def matmul(m: int, k: int, n: int) -> Callable[[Graph], list[np.ndarray]]:
    def build(g: Graph) -> list[np.ndarray]:
        """One MatMul of an [M, K] input by a constant [K, N] weight (a linear layer without bias)."""
        x = g.input("input", TensorProto.FLOAT, [m, k])
        w = g.normal("weight", (k, n), 1.0 / math.sqrt(k))
        y = g.node("MatMul", [x, w], "/matmul")
        g.output(y, "output", [m, n])
        return [g.rng.standard_normal((m, k), dtype=F32)]

    return build


@dataclass(frozen=True)
class Spec:
    """One model of the suite."""

    name: str
    build: Callable[[Graph], list[np.ndarray]]
    seed: int
    title: str
    # Comparison with ONNX Runtime: max |kiln - ort| <= rtol * max |ort|. ORT's own results with
    # and without graph optimizations, at 1 and 2 threads, differ by at most 7e-7 on these models
    # and an fp32 sequential sum over K = 4096 is off by about 4e-6, so these bounds leave a
    # margin for other summation orders and erf/exp approximations yet catch any wrong tile,
    # index or fusion (errors of order 1).
    rtol: float
    quick: bool = False
    # A variant row: the model of suite row `base` (no files of its own), compiled by Kiln with
    # `kiln_flags` added (e.g. `--quantize=nf4`) and run by ONNX Runtime as `ort` says: "fp32" the
    # model as it is, "nbits4" its MatMul weights quantized to ORT's MatMulNBits 4-bit format,
    # "int8dyn" its MatMul/Gemm (or the op types of Kiln's --quantize-ops=) quantized by ORT's
    # quantize_dynamic (int8 weights and activations)
    # (bench/suite.py makes that model when it runs). The rtol of a quantized row bounds the
    # quantization error of both engines (a wrong index or scale still gives errors of order 1).
    base: str | None = None
    kiln_flags: tuple[str, ...] = ()
    ort: str = "fp32"
    # What Kiln compiles: "fp32" the model as it is, "nbits4" the same MatMulNBits model ONNX
    # Runtime runs (an imported quantized model: both engines run the same quantized weights).
    kiln_model: str = "fp32"


def quantized(base: str, scheme: str) -> Spec:
    """The variant row of suite row `base` compiled with `--quantize=scheme`: ONNX Runtime runs
    MatMulNBits 4-bit for a 4-bit scheme, else the f32 model."""
    b = next(s for s in SPECS if s.name == base)
    four = scheme in ("nf4", "int4", "uint4", "mxfp4")
    name = scheme.split("-")[0]
    title = f"{b.title}, {scheme.upper()} (ORT: {'MatMulNBits 4-bit' if four else 'f32'})"
    return Spec(
        f"{base}_{name}",
        b.build,
        b.seed,
        title,
        0.3 if four else 0.1,
        base=base,
        kiln_flags=(f"--quantize={scheme}",),
        ort="nbits4" if four else "fp32",
    )


SPECS: list[Spec] = [
    Spec("mlp_b1", mlp(1), 2001, "MLP 784-512-512-10, batch 1", 5e-5, quick=True),
    Spec("mlp_b64", mlp(64), 2001, "MLP 784-512-512-10, batch 64", 5e-5, quick=True),
    Spec("gemv_4096", matmul(1, 4096, 4096), 2002, "GEMV 1x4096x4096", 5e-5, quick=True),
    Spec("matmul_16x4096x11008", matmul(16, 4096, 11008), 2003, "MatMul 16x4096x11008", 5e-5),
    Spec("matmul_1024", matmul(1024, 1024, 1024), 2004, "MatMul 1024x1024x1024", 5e-5),
    Spec("bert_base_layer", bert_base_layer, 2005, "BERT-base encoder layer, seq 128", 1e-4),
    Spec("bert_4l_256", bert_4l_256, 2006, "4-layer BERT, hidden 256, seq 128", 1e-4),
    Spec("squeezenet1_1", squeezenet1_1, 2007, "SqueezeNet 1.1", 1e-4, quick=True),
    Spec("mobilenet_v2", mobilenet_v2, 2008, "MobileNetV2 1.0, 224", 1e-4),
    Spec("shufflenet_v2", shufflenet_v2, 2009, "ShuffleNet v2 x1.0", 1e-4),
    Spec("googlenet", googlenet, 2010, "Inception v1 (GoogLeNet)", 2e-4),
    Spec("resnet50", resnet50, 2011, "ResNet-50", 2e-4),
    Spec("dcgan_generator", dcgan_generator, 2012, "DCGAN generator (ConvTranspose), batch 16", 2e-4),
]
# Weight-only quantization: the GEMV and the batch-16 GEMM above, compiled with --quantize
# (compare their Kiln times with the f32 rows'), ONNX Runtime running MatMulNBits 4-bit
# (block 64, symmetric, its quantizer's RTN) for the 4-bit rows and the f32 model for FP8.
SPECS += [
    quantized(base, scheme) for base in ("gemv_4096", "matmul_16x4096x11008") for scheme in ("nf4", "fp8-e4m3")
]
# A quantized model from elsewhere: ONNX Runtime's own MatMulNBits 4-bit model of the GEMV (its
# quantizer, block 64, symmetric), imported by Kiln (codes, scales and zero points as stored)
# and run by both engines on the same weights.
SPECS += [
    Spec(
        "gemv_4096_nbits_import",
        matmul(1, 4096, 4096),
        2002,
        "GEMV 1x4096x4096, ORT's MatMulNBits 4-bit model imported (both engines)",
        1e-4,
        base="gemv_4096",
        ort="nbits4",
        kiln_model="nbits4",
    ),
]
# Dynamic int8 (weights and activations): the 4-layer BERT compiled with --quantize=int8
# --quantize-activations=dynamic, ONNX Runtime running its own quantize_dynamic model of it.
# The rtol bounds both engines' int8 error (about 0.005 of the output range each).
SPECS += [
    Spec(
        "bert_4l_256_int8dyn",
        bert_4l_256,
        2006,
        "4-layer BERT, hidden 256, seq 128, dynamic INT8 (ORT: quantize_dynamic)",
        0.05,
        base="bert_4l_256",
        kiln_flags=("--quantize=int8", "--quantize-activations=dynamic"),
        ort="int8dyn",
    ),
    # The same for a CNN: ResNet-50's convolutions and its classifier (--quantize-ops=Conv,Gemm),
    # ONNX Runtime's quantize_dynamic of the same op types. The two engines quantize the weights
    # differently (Kiln: a scale per output channel; ORT: per tensor), about 0.02 of the logits'
    # range apart; a wrong index or scale is of order 1.
    Spec(
        "resnet50_int8dyn",
        resnet50,
        2011,
        "ResNet-50, dynamic INT8 (ORT: quantize_dynamic)",
        0.1,
        base="resnet50",
        kiln_flags=("--quantize=int8", "--quantize-activations=dynamic", "--quantize-ops=Conv,Gemm"),
        ort="int8dyn",
    ),
]
# Weight-only quantized convolutions: ResNet-50's convolutions and classifier compiled with
# --quantize=nf4 / fp8-e4m3 --quantize-ops=Conv,Gemm (quant.conv: the conv kernel dequantizes a
# panel block at a time), beside ONNX Runtime's f32 model (it has no weight-only quantized
# convolution). Compare the Kiln times with the f32 row's. The rtol bounds the weight error's
# effect on the logits (NF4's quantization error of each weight, about 0.09 of its RMS, adds up
# over 54 layers of random weights; FP8's is about 0.02); a wrong index or scale is far above.
SPECS += [
    Spec(
        f"resnet50_{name}",
        resnet50,
        2011,
        f"ResNet-50, {scheme.upper()} weights of Conv and Gemm (ORT: f32)",
        rtol,
        base="resnet50",
        kiln_flags=(f"--quantize={scheme}", "--quantize-ops=Conv,Gemm"),
    )
    for name, scheme, rtol in (("nf4", "nf4", 0.5), ("fp8", "fp8-e4m3", 0.15))
]
BY_NAME = {s.name: s for s in SPECS}
# The rows with model files of their own (variant rows use their base's).
FILE_SPECS = [s for s in SPECS if s.base is None]


def build(spec: Spec) -> tuple[onnx.ModelProto, list[np.ndarray]]:
    g = Graph(spec.name, spec.seed)
    inputs = spec.build(g)
    return g.model(), inputs


# --- writing, manifest, cache -------------------------------------------------------------------


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def write(spec: Spec, out: Path) -> dict:
    """Writes one model and its inputs under out/NAME and returns its manifest entry."""
    model, inputs = build(spec)
    mdir = out / spec.name
    ddir = mdir / "test_data_set_0"
    ddir.mkdir(parents=True, exist_ok=True)
    for stale in ddir.glob("*.pb"):
        stale.unlink()
    # Write to a temporary name first so an interrupted run never leaves a valid-looking model.
    tmp = mdir / "model.onnx.tmp"
    tmp.write_bytes(model.SerializeToString())
    tmp.replace(mdir / "model.onnx")
    for i, (vi, arr) in enumerate(zip(model.graph.input, inputs, strict=True)):
        (ddir / f"input_{i}.pb").write_bytes(numpy_helper.from_array(arr, vi.name).SerializeToString())
    files = sorted(p for p in mdir.rglob("*") if p.is_file())
    return {
        "title": spec.title,
        "seed": spec.seed,
        "opset": OPSET,
        "ops": sorted({n.op_type for n in model.graph.node}),
        "num_nodes": len(model.graph.node),
        "num_weights": int(sum(int(np.prod(t.dims)) for t in model.graph.initializer)),
        "files": {str(p.relative_to(mdir)): {"bytes": p.stat().st_size, "sha256": sha256(p)} for p in files},
    }


def cached(name: str, out: Path, manifest: dict) -> bool:
    """True when out/NAME holds exactly the files the manifest lists (sizes first, then hashes)."""
    entry = manifest.get("models", {}).get(name)
    if entry is None:
        return False
    mdir = out / name
    present = sorted(str(p.relative_to(mdir)) for p in mdir.rglob("*") if p.is_file()) if mdir.is_dir() else []
    if present != sorted(entry["files"]):
        return False
    files = entry["files"].items()
    return all((mdir / f).stat().st_size == m["bytes"] for f, m in files) and all(
        sha256(mdir / f) == m["sha256"] for f, m in files
    )


def ensure(names: list[str], out: Path = CACHE_DIR) -> list[Path]:
    """The model directories for `names`, generating those whose cached files do not match the
    committed manifest. Fails when a fresh generation does not match it either (the generator
    changed without `--bless`, or it is not deterministic)."""
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else {}
    dirs = []
    for name in names:
        name = BY_NAME[name].base or name
        if not cached(name, out, manifest):
            print(f"# generating {name} into {out}", file=sys.stderr, flush=True)
            entry = write(BY_NAME[name], out)
            expected = manifest.get("models", {}).get(name)
            if entry != expected:
                raise SystemExit(
                    f"bench/models.py: {name} does not match bench/MANIFEST.json; if the generator changed on "
                    "purpose, rerun with --bless and commit the manifest"
                )
        dirs.append(out / name)
    return dirs


def versions() -> dict:
    return {"python": sys.version.split()[0], "numpy": np.__version__, "onnx": onnx.__version__}


def generate(out: Path, names: list[str]) -> dict:
    return {
        "generator": "bench/models.py",
        "versions": versions(),
        "models": {n: write(BY_NAME[n], out) for n in names},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=CACHE_DIR, help="output directory (default: %(default)s)")
    ap.add_argument("--models", help="comma-separated model names (default: all)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument(
        "--check", action="store_true", help="regenerate into a temporary directory and compare with the manifest"
    )
    mode.add_argument(
        "--bless", action="store_true", help="regenerate every model into --out and rewrite bench/MANIFEST.json"
    )
    mode.add_argument("--list", action="store_true", help="print the model names and titles")
    args = ap.parse_args()
    names = [s.name for s in FILE_SPECS] if not args.models else args.models.split(",")
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        ap.error(f"unknown models {unknown}; known: {', '.join(BY_NAME)}")
    if not args.list:
        # Variant rows have no files of their own: their base model's.
        names = list(dict.fromkeys(BY_NAME[n].base or n for n in names))
    if args.list:
        for s in SPECS:
            print(f"{s.name:<24}{s.title}")
        return 0
    if args.check:
        committed = json.loads(MANIFEST.read_text())
        bad = []
        with tempfile.TemporaryDirectory(prefix="kiln-bench-models-") as tmp:
            for n in names:
                fresh = write(BY_NAME[n], Path(tmp))
                if fresh != committed["models"].get(n):
                    bad.append(n)
                for f in (Path(tmp) / n).rglob("*"):
                    if f.is_file():
                        f.unlink()
        if committed.get("versions") != versions():
            print(f"note: manifest made with {committed.get('versions')}, this is {versions()}", file=sys.stderr)
        if bad:
            print(f"bench models differ from bench/MANIFEST.json: {', '.join(bad)}", file=sys.stderr)
            return 1
        print(f"bench models match bench/MANIFEST.json ({len(names)} checked)")
        return 0
    if args.bless:
        if args.models:
            ap.error("--bless regenerates every model; drop --models")
        manifest = generate(args.out, names)
        MANIFEST.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        print(f"wrote {MANIFEST}")
        return 0
    ensure(names, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
