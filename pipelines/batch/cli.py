"""The batch command line: ``python -m pipelines.batch``, and ``videotranslator batch``, which hands its arguments here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pipelines.batch
from pipelines.batch import storage_uri as uris
from pipelines.batch.manifest import MANIFEST
from pipelines.schema import JobRequest

if TYPE_CHECKING:
    from configs.settings import Settings

SETUP_ERROR = 125
MAX_EXIT = 100
INTERRUPTED = 130


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    doc = pipelines.batch.__doc__
    p = argparse.ArgumentParser(prog="python -m pipelines.batch", description=doc.split("\n")[0] if doc else None)
    p.add_argument("--input", required=True, help="a folder of media files, or a manifest.jsonl (local path or s3://)")
    p.add_argument("--to", required=True, help="target language(s), comma-separated")
    p.add_argument("--output", required=True, help="output folder (local path or s3://bucket/prefix)")
    p.add_argument("--mode", choices=["dub", "subtitles"], default="dub")
    p.add_argument("--from", dest="source", default=None, help="source language (default: detect per file)")
    p.add_argument("--glossary", type=Path, default=None, help="a glossary file: 'term = translation' lines or a JSON object")
    p.add_argument("--address", default=None, help="Ray address (default: RAY_ADDRESS, else start Ray locally)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs for a local Ray (default: all)")
    return p.parse_args(argv)


def read_jobs(args: argparse.Namespace, settings: Settings) -> list[JobRequest]:
    """The jobs the arguments name, with canonical language codes, each checked against ``settings``'s speaker
    and background rules (pipelines.jobinputs) before any work. Raises VTError, ValueError, OSError."""
    from pipelines.batch.inputs import read_inputs
    from pipelines.jobinputs import check_settings_inputs
    from pipelines.languages import normalize_language, normalize_targets

    glossary: dict[str, str] = {}
    glossary_file = args.glossary or settings.translator.glossary_file
    if glossary_file:
        from pipelines.glossary import load_glossary

        glossary = load_glossary(glossary_file)
    source = normalize_language(args.source) if args.source else None
    defaults = JobRequest(input="-", target_languages=normalize_targets(args.to), source_language=source,
                          mode=args.mode, glossary=glossary)  # fmt: skip
    return read_inputs(args.input, defaults, check=lambda job: check_settings_inputs(settings, job))


def main(argv: Sequence[str] | None = None, *, settings: Settings | None = None) -> int:
    """The batch command; returns the exit code (failed inputs, at most 100; 125 = could not start;
    130 = interrupted, rerun to resume).

    ``settings`` defaults to ``get_settings()`` (environment, .env, YAML)."""
    from configs.logging import setup_logging
    from configs.settings import get_settings
    from pipelines.batch.driver import ray_session, run, terminate_as_interrupt
    from pipelines.errors import VTError

    args = parse_args(argv)
    settings = (settings or get_settings()).model_copy(deep=True)
    storage = settings.storage  # workers may start elsewhere: make the cache path absolute
    storage.cache_dir = storage.cache_dir.absolute()
    setup_logging(settings.LOG_DIR, settings.LOG_LEVEL, console=False)
    try:
        jobs = read_jobs(args, settings)
    except (VTError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return SETUP_ERROR
    if not jobs:
        print(f"error: no media files in {args.input}", file=sys.stderr)
        return SETUP_ERROR
    out = args.output if uris.is_remote(args.output) else str(Path(args.output).absolute())
    try:
        with ray_session(args.address, args.num_cpus), terminate_as_interrupt():  # after ray.init, which sets its own
            summary = run(jobs, settings, out)
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return INTERRUPTED
    c = summary["counts"]
    print(f"done: {c['succeeded']} succeeded, {c['failed']} failed, {c['skipped']} skipped; "
          f"{summary['media_s']:.0f}s media in {summary['wall_s']:.0f}s "
          f"({summary['throughput_media_s_per_wall_s']}x); manifest: {uris.join(out, MANIFEST)}",
          file=sys.stderr)  # fmt: skip
    return min(int(c["failed"]), MAX_EXIT)
