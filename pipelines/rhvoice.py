"""RHVoice: a private install from Debian's non-free packages and a ``Synthesizer`` over ``libRHVoice.so.5``.

Debian bookworm ships RHVoice in ``non-free`` only (no PyPI binding). The install never touches the
system's apt sources (pipelines/debs.py: a private apt setup under ``<models>/rhvoice/.apt``, each .deb
checked against a pinned SHA-256), and ``dpkg-deb`` unpacks the
libraries plus only the voices we may offer (the CC-BY-NC-ND ones in the same package are never unpacked)
into ``<models>/rhvoice``. The synthesizer loads the libraries by absolute path (``libsonic`` and
``libRHVoice_core`` first, with RTLD_GLOBAL, so no LD_LIBRARY_PATH is needed) and points the engine at
that tree's data and config folders.
"""

from __future__ import annotations

import ctypes
import json
import logging
import shutil
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from pipelines import debs
from pipelines.errors import BackendUnavailable, ModelError
from pipelines.fileio import atomic_write_text

logger = logging.getLogger(__name__)

LIB_DIR = "lib"
# package name -> (version, .deb sha256), observed on deb.debian.org for bookworm.
DEBS: dict[str, tuple[str, str]] = {
    "libsonic0": ("0.2.0-12", "9d60de6918ace0b10e3e4e95421befd08aaf03b5b2a3d71ceb799e0cf259916f"),
    "librhvoice-core7": ("1.8.0+dfsg-3", "7b321d21caf899c78e579593f105fd49995f4d0c948c0523b2b4baa3291375f5"),
    "librhvoice5": ("1.8.0+dfsg-3", "7a12f124a48941ec0e94aeaa60da44a27c164a31d5a6bb884875e533a6d15128"),
    "rhvoice-russian": ("1.8.0+dfsg-3", "1892955b9d779abb67963842f124fb2192810e7bb9976ad3a4cbdea7a99ac838"),
    "rhvoice-brazilian-portuguese": (
        "1.8.0+dfsg-3", "907b8c633ef9b46b7f4ed3b0f6dcfa9e202f9306d45930666ad36e1b1d2e851f",
    ),
}  # fmt: skip
BASE_PACKAGES = ("libsonic0", "librhvoice-core7", "librhvoice5")
LIBS = ("libsonic.so.0", "libRHVoice_core.so.7", "libRHVoice.so.5")


def root(models_dir: Path) -> Path:
    return Path(models_dir) / "rhvoice"


def _stamp(models_dir: Path, folder: str) -> Path:
    return root(models_dir) / ".stamps" / f"{folder}.json"


def is_installed(models_dir: Path, folder: str) -> bool:
    """Whether the libraries and the voice ``folder`` (e.g. ``aleksandr``) were unpacked and stamped."""
    return _stamp(models_dir, "base").is_file() and _stamp(models_dir, folder).is_file()


def download(packages: Iterable[str], models_dir: Path) -> dict[str, Path]:
    """The .debs of ``packages`` (pinned versions), fetched through a private apt setup and checksummed."""
    return debs.download(DEBS, packages, root(models_dir) / ".apt", "RHVoice")


def install(models_dir: Path, package: str, folders: Iterable[str]) -> list[str]:
    """Install the libraries and the voice ``folders`` of language ``package``. Idempotent; returns the folders."""
    folders = list(folders)
    todo = [f for f in folders if not is_installed(models_dir, f)]
    if not todo:
        return folders
    base_needed = not _stamp(models_dir, "base").is_file()
    fetched = download((BASE_PACKAGES if base_needed else ()) + (package,), models_dir)
    tree = root(models_dir)
    staging = tree / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    if base_needed:
        for p in BASE_PACKAGES:
            debs.extract(fetched[p], staging, ("usr/lib/", "etc/RHVoice/"))
        lib = tree / LIB_DIR
        lib.mkdir(parents=True, exist_ok=True)
        for so in (staging / "usr/lib/x86_64-linux-gnu").iterdir():
            shutil.copy2(so, lib / so.name, follow_symlinks=True)
        (tree / "config").mkdir(exist_ok=True)
        shutil.copy2(staging / "etc/RHVoice/RHVoice.conf", tree / "config" / "RHVoice.conf")
    debs.extract(
        fetched[package], staging, ("usr/share/RHVoice/languages/", *(f"usr/share/RHVoice/voices/{f}/" for f in todo))
    )
    data = tree / "data"
    for kind in ("languages", "voices"):
        for item in (staging / "usr/share/RHVoice" / kind).iterdir():
            shutil.rmtree(data / kind / item.name, ignore_errors=True)
            (data / kind).mkdir(parents=True, exist_ok=True)
            shutil.move(str(item), data / kind / item.name)
    shutil.rmtree(staging, ignore_errors=True)
    for folder in (["base"] if base_needed else []) + todo:
        stamp = _stamp(models_dir, folder)
        stamp.parent.mkdir(parents=True, exist_ok=True)
        pkgs = BASE_PACKAGES if folder == "base" else (package,)
        atomic_write_text(stamp, json.dumps({p: {"version": DEBS[p][0], "sha256": DEBS[p][1]} for p in pkgs}))
    for deb in fetched.values():
        deb.unlink(missing_ok=True)  # 100+ MB each; the stamp keeps the checksums
    return folders


class _Callbacks(ctypes.Structure):
    _fields_ = [
        ("set_sample_rate", ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)),
        ("play_speech", ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_uint, ctypes.c_void_p)),
        *((n, ctypes.c_void_p) for n in ("process_mark", "word_starts", "word_ends", "sentence_starts",
                                          "sentence_ends", "play_audio", "done")),
    ]  # fmt: skip


class _InitParams(ctypes.Structure):
    _fields_ = [
        ("data_path", ctypes.c_char_p), ("config_path", ctypes.c_char_p),
        ("resource_paths", ctypes.POINTER(ctypes.c_char_p)), ("callbacks", _Callbacks), ("options", ctypes.c_uint),
    ]  # fmt: skip


class _SynthParams(ctypes.Structure):
    _fields_ = [
        ("voice_profile", ctypes.c_char_p),
        *((n, ctypes.c_double) for n in ("absolute_rate", "absolute_pitch", "absolute_volume",
                                          "relative_rate", "relative_pitch", "relative_volume")),
        ("punctuation_mode", ctypes.c_int), ("punctuation_list", ctypes.c_char_p),
        ("capitals_mode", ctypes.c_int), ("flags", ctypes.c_int),
    ]  # fmt: skip


class RHVoiceSynthesizer:
    """One RHVoice voice from the private tree: ``profile`` as in its voice.info (``Aleksandr``), ``folder``
    its data folder (``aleksandr``)."""

    def __init__(self, profile: str, folder: str, models_dir: Path) -> None:
        tree = root(models_dir)
        if not is_installed(models_dir, folder):
            raise ModelError(f"RHVoice voice {profile!r} is not installed; run `videotranslator voices pull`")
        self.name = f"rhvoice:{folder.lower()}"
        self.profile = profile
        self.sample_rate_hz = 24000  # updated by the engine's set_sample_rate callback
        self._chunks: list[np.ndarray] = []
        self._lock = threading.Lock()
        try:
            for lib in LIBS[:-1]:
                ctypes.CDLL(str(tree / LIB_DIR / lib), mode=ctypes.RTLD_GLOBAL)
            self._lib = ctypes.CDLL(str(tree / LIB_DIR / LIBS[-1]))
        except OSError as exc:
            raise BackendUnavailable(f"RHVoice libraries do not load: {exc}") from exc
        self._lib.RHVoice_new_tts_engine.restype = ctypes.c_void_p
        self._lib.RHVoice_new_tts_engine.argtypes = [ctypes.POINTER(_InitParams)]
        self._lib.RHVoice_new_message.restype = ctypes.c_void_p
        self._lib.RHVoice_new_message.argtypes = [
            ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint, ctypes.c_int, ctypes.POINTER(_SynthParams), ctypes.c_void_p,
        ]  # fmt: skip
        self._lib.RHVoice_speak.argtypes = [ctypes.c_void_p]
        self._lib.RHVoice_delete_message.argtypes = [ctypes.c_void_p]
        self._lib.RHVoice_delete_tts_engine.argtypes = [ctypes.c_void_p]
        # The callbacks must outlive the engine: keep references on self.
        self._on_rate = _Callbacks._fields_[0][1](self._set_rate)
        self._on_speech = _Callbacks._fields_[1][1](self._play)
        self._init = _InitParams(
            str(tree / "data").encode(), str(tree / "config").encode(), None,
            _Callbacks(self._on_rate, self._on_speech), 0,
        )  # fmt: skip
        self._engine = self._lib.RHVoice_new_tts_engine(ctypes.byref(self._init))
        if not self._engine:
            raise ModelError(f"RHVoice could not start with the data in {tree}")

    def _set_rate(self, rate: int, _user: object) -> int:
        self.sample_rate_hz = int(rate)
        return 1

    def _play(self, samples: object, count: int, _user: object) -> int:
        self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).astype(np.float32) / 32768.0)
        return 1

    def synthesize(self, text: str) -> np.ndarray:
        """Speak ``text`` (UTF-8 plain text). Raises ModelError when RHVoice refuses it."""
        data = text.encode("utf-8")
        params = _SynthParams(self.profile.encode(), 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0, None, 0, 0)
        with self._lock:
            self._chunks = []
            msg = self._lib.RHVoice_new_message(self._engine, data, len(data), 0, ctypes.byref(params), None)
            if not msg:
                raise ModelError(f"RHVoice refused the text for voice {self.profile!r}")
            try:
                ok = self._lib.RHVoice_speak(msg)
            finally:
                self._lib.RHVoice_delete_message(msg)
            chunks, self._chunks = self._chunks, []
        if not ok:
            raise ModelError(f"RHVoice failed to speak with voice {self.profile!r}")
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)

    def __del__(self) -> None:
        engine, self._engine = getattr(self, "_engine", None), None
        if engine:
            self._lib.RHVoice_delete_tts_engine(engine)
