"""Architecture rules: pipelines imports without Ray (only ``pipelines.batch`` uses it, inside functions);
configs imports nothing of ours."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pipelines

BATCH = "pipelines.batch"


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return set(out.stdout.split())


def _pipelines_modules(name: str = "pipelines", folder: Path = Path(pipelines.__file__).parent) -> dict[str, Path]:
    """Every module of package ``name`` (subpackages too) and its source file, walked with pkgutil on disk
    (``iter_modules``: unlike ``walk_packages``, it imports nothing here)."""
    found = {name: folder / "__init__.py"}
    for info in pkgutil.iter_modules([str(folder)], prefix=f"{name}."):
        path = folder / info.name.rsplit(".", 1)[1]
        found.update(_pipelines_modules(info.name, path) if info.ispkg else {info.name: path.with_suffix(".py")})
    return found


def _is_ray(name: str) -> bool:
    return name == "ray" or name.startswith("ray.")


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and not node.level and node.module:
        return [node.module]
    return []


def _ray_imports(source: Path) -> list[int]:
    """Lines of ``source`` that import Ray, at any depth (inside functions too)."""
    tree = ast.parse(source.read_text(encoding="utf-8"))
    return [node.lineno for node in ast.walk(tree) if any(_is_ray(name) for name in _imported(node))]


def test_the_walk_finds_every_module() -> None:
    mods = _pipelines_modules()
    assert {"pipelines.runner", "pipelines.backends.vllm", BATCH, f"{BATCH}.cli", f"{BATCH}.chunking"} <= set(mods)
    assert all(path.is_file() for path in mods.values())
    assert len(mods) == len(list(Path(pipelines.__file__).parent.rglob("*.py")))  # no file left out of the walk


def test_every_pipelines_module_imports_without_ray() -> None:
    """Importing each module, the batch's included, leaves Ray (and the service layers) out of ``sys.modules``."""
    names = sorted(_pipelines_modules())
    mods = _modules_after("import importlib\n" + "".join(f"importlib.import_module({n!r})\n" for n in names))
    assert set(names) <= mods
    assert not {m for m in mods if _is_ray(m)}
    assert not {m for m in mods if m.split(".")[0] in {"fastapi", "serve_app", "videotranslator", "cluster"}}


def test_only_the_batch_package_imports_ray() -> None:
    uses = {name: lines for name, path in _pipelines_modules().items() if (lines := _ray_imports(path))}
    outside = {name: lines for name, lines in uses.items() if name != BATCH and not name.startswith(f"{BATCH}.")}
    assert not outside, f"only {BATCH}.* may import Ray: {outside}"
    assert uses, "the check found no Ray import at all: it no longer sees the batch's"


def test_configs_imports_nothing_of_ours() -> None:
    mods = _modules_after("import configs, configs.logging")
    assert "configs.settings" in mods
    assert not {m for m in mods if m.split(".")[0] in {"pipelines", "serve_app", "videotranslator"}}
