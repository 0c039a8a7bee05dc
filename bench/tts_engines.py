"""A quick look at the engines of issue 14's second slice: mbrola voices, RHVoice Letícia (pt) and espeak-ng,
five everyday sentences per language (one with a number), each voice in its own child process (speed =
seconds of audio per second of wall time; peak RSS of that process, and of its espeak-ng/mbrola
subprocesses), the bundled Whisper (forced to the
language) re-transcribing every clip, CER against the sentence (the lower of: as written, as normalised by
pipelines/normalize.py, since Whisper writes numbers either way). bench/tts_cer.py is the full benchmark.

    .venv/bin/python bench/tts_engines.py [--voices de=mbrola:de2 de=espeak:de ...]

mbrola voices outside the catalog are installed (pinned .debs, pipelines/mbrola.py) and spoken directly.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(ROOT))

SENTENCES = {
    "de": ["Guten Morgen, wie geht es Ihnen heute?", "Der Zug nach Hamburg fährt um 8 Uhr ab.",
           "Können Sie mir bitte den Weg zum Bahnhof zeigen?", "Im Sommer fahren wir oft an die Ostsee.",
           "Das Museum hat 25 Räume und einen großen Garten."],
    "fr": ["Bonjour, comment allez-vous aujourd'hui ?", "Le train pour Lyon part à 8 heures.",
           "Pouvez-vous m'indiquer le chemin de la gare ?", "En été, nous allons souvent à la mer.",
           "Le musée a 25 salles et un grand jardin."],
    "es": ["Buenos días, ¿cómo está usted hoy?", "El tren a Sevilla sale a las 8 de la mañana.",
           "¿Puede indicarme el camino a la estación?", "En verano vamos a menudo a la playa.",
           "El museo tiene 25 salas y un gran jardín."],
    "it": ["Buongiorno, come sta oggi?", "Il treno per Milano parte alle 8.",
           "Può indicarmi la strada per la stazione?", "D'estate andiamo spesso al mare.",
           "Il museo ha 25 sale e un grande giardino."],
    "pt": ["Bom dia, como você está hoje?", "O trem para São Paulo sai às 8 horas.",
           "Você pode me mostrar o caminho para a estação?", "No verão, vamos muitas vezes à praia.",
           "O museu tem 25 salas e um grande jardim."],
}  # fmt: skip
DEFAULT_VOICES = [
    "de=espeak:de", "de=mbrola:de2", "de=mbrola:de1", "fr=espeak:fr-fr", "fr=mbrola:fr4", "fr=mbrola:fr1",
    "es=espeak:es", "es=mbrola:es2", "es=mbrola:es1", "it=espeak:it", "it=mbrola:it3", "it=mbrola:it4",
    "pt=espeak:pt-br", "pt=rhvoice:leticia-f123", "pt=mbrola:br3", "pt=mbrola:br4",
]  # fmt: skip


def synth_child(lang: str, voice: str, out_dir: Path) -> None:
    """In a child process: speak the sentences of ``lang`` with ``voice`` into out_dir/N.wav; print JSON."""
    from configs.settings import get_settings
    from pipelines import mbrola
    from pipelines.media import write_wav
    from pipelines.tts import TTSStage
    from pipelines.voices import CATALOG

    settings = get_settings()
    models_dir = settings.storage.models_dir
    stage = TTSStage(settings.tts, models_dir)
    engine, _, name = voice.partition(":")
    if engine == "mbrola" and voice not in CATALOG:
        mbrola.install(models_dir, [name])
        synth = mbrola.synthesizer(name, models_dir, settings.tts.espeak_rate_wpm)
    else:
        synth = stage.synthesizer(voice)
    audio_s = wall_s = 0.0
    for i, text in enumerate(SENTENCES[lang]):
        t0 = time.perf_counter()
        samples = synth.synthesize(stage.spoken_text(text, lang))
        wall_s += time.perf_counter() - t0
        audio_s += samples.size / synth.sample_rate_hz
        write_wav(out_dir / f"{i}.wav", samples, synth.sample_rate_hz)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # espeak-ng/mbrola subprocesses
    print(json.dumps({"audio_s": audio_s, "wall_s": wall_s, "peak_rss_mb": rss_mb, "subprocess_rss_mb": child_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voices", nargs="*", default=DEFAULT_VOICES, help="LANG=ENGINE:VOICE ...")
    parser.add_argument("--child", nargs=3, metavar=("LANG", "VOICE", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        synth_child(args.child[0], args.child[1], Path(args.child[2]))
        return

    from bench.tts_cer import cer
    from configs.settings import get_settings
    from pipelines.asr import WhisperASR
    from pipelines.normalize import normalize

    settings = get_settings()
    asr = WhisperASR(settings.asr, settings.storage.models_dir)
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT))}
    with tempfile.TemporaryDirectory() as tmp:
        for pair in args.voices:
            lang, _, voice = pair.partition("=")
            out = Path(tmp) / f"{lang}_{voice.replace(':', '_')}"
            out.mkdir()
            child = subprocess.run(
                [sys.executable, __file__, "--child", lang, voice, str(out)], capture_output=True, text=True, env=env,
                check=False,
            )  # fmt: skip
            if child.returncode != 0:
                print(f"{lang} {voice:<24} failed: {child.stderr.strip().splitlines()[-1:]}", flush=True)
                continue
            figures = json.loads(child.stdout.strip().splitlines()[-1])
            errors = []
            for i, text in enumerate(SENTENCES[lang]):
                heard = " ".join(s.text for s in asr(out / f"{i}.wav", language=lang).segments)
                errors.append(min(cer(text, heard), cer(normalize(text, lang), heard)))
            print(
                f"{lang} {voice:<24} CER {100 * sum(errors) / len(errors):5.1f} % (worst {100 * max(errors):5.1f} %)  "
                f"{figures['audio_s'] / figures['wall_s']:6.1f}x real time  peak RSS {figures['peak_rss_mb']:.0f} MB "
                f"(engine subprocesses {figures.get('subprocess_rss_mb', 0):.0f} MB)",
                flush=True,
            )


if __name__ == "__main__":
    main()
