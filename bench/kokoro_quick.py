"""A quick check of the Kokoro voices (issue 14): five sentences per language, against espeak-ng.

Each voice speaks the sentences of every language in its own child process (speed = seconds of audio per
second of wall time; peak RSS of that process); the bundled Whisper (base, forced to the language)
re-transcribes every clip and the CER against the spoken text is reported per voice and language. The
full intelligibility bench (20+ sentences per language) is bench/tts_cer.py.

    .venv/bin/python bench/kokoro_quick.py [--voices kokoro:jm_kumo kokoro:jf_alpha] [--langs es it ...]
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

from bench.tts_cer import cer

SENTENCES: dict[str, list[str]] = {
    "es": [
        "Buenos días, ¿cómo estás hoy?",
        "El tren sale de la estación a las ocho de la mañana.",
        "María compró tres kilos de naranjas en el mercado.",
        "¿Dónde está la farmacia más cercana?",
        "Mañana va a llover en toda la ciudad.",
    ],
    "it": [
        "Buongiorno, come stai oggi?",
        "Il treno parte dalla stazione alle otto del mattino.",
        "Giulia ha comprato tre chili di arance al mercato.",
        "Dov'è la farmacia più vicina?",
        "Domani pioverà in tutta la città.",
    ],
    "pt": [
        "Bom dia, como você está hoje?",
        "O trem sai da estação às oito horas da manhã.",
        "Maria comprou três quilos de laranjas na feira.",
        "Onde fica a farmácia mais próxima?",
        "Amanhã vai chover em toda a cidade.",
    ],
    "fr": [
        "Bonjour, comment allez-vous aujourd'hui ?",
        "Le train part de la gare à huit heures du matin.",
        "Marie a acheté trois kilos d'oranges au marché.",
        "Où se trouve la pharmacie la plus proche ?",
        "Demain, il va pleuvoir dans toute la ville.",
    ],
    "de": [
        "Guten Morgen, wie geht es dir heute?",
        "Der Zug fährt um acht Uhr morgens vom Bahnhof ab.",
        "Maria hat auf dem Markt drei Kilo Orangen gekauft.",
        "Wo ist die nächste Apotheke?",
        "Morgen wird es in der ganzen Stadt regnen.",
    ],
    "ja": [
        "おはようございます。今日はいい天気ですね。",
        "電車は朝八時に駅を出発します。",
        "東京は日本の首都です。",
        "一番近い薬局はどこですか？",
        "明日は町中で雨が降るでしょう。",
    ],
}
# Other ways a transcript may rightly write a sentence (digits for numbers); a sentence's CER is the lowest.
ALSO: dict[tuple[str, int], tuple[str, ...]] = {
    ("es", 1): ("El tren sale de la estación a las 8 de la mañana.",),
    ("es", 2): ("María compró 3 kilos de naranjas en el mercado.",),
    ("it", 1): ("Il treno parte dalla stazione alle 8 del mattino.",),
    ("it", 2): ("Giulia ha comprato 3 chili di arance al mercato.",),
    ("pt", 1): ("O trem sai da estação às 8 horas da manhã.", "O trem sai da estação às 8h da manhã."),
    ("pt", 2): ("Maria comprou 3 quilos de laranjas na feira.",),
    ("fr", 1): ("Le train part de la gare à 8 heures du matin.", "Le train part de la gare à 8h du matin."),
    ("fr", 2): ("Marie a acheté 3 kilos d'oranges au marché.",),
    ("de", 1): ("Der Zug fährt um 8 Uhr morgens vom Bahnhof ab.",),
    ("de", 2): ("Maria hat auf dem Markt 3 Kilo Orangen gekauft.",),
    ("ja", 1): ("電車は朝8時に駅を出発します。",),
}


def sentence_cer(lang: str, i: int, heard: str) -> float:
    refs = (SENTENCES[lang][i], *ALSO.get((lang, i), ()))
    if lang == "ja":  # no spaces between Japanese words: Whisper's own spacing is not an error
        heard = heard.replace(" ", "").replace("\u3000", "")
        refs = tuple(r.replace(" ", "") for r in refs)
    return min(cer(ref, heard) for ref in refs)


def synth_child(voice: str, langs: list[str], out_dir: Path) -> None:
    """In a child process: speak every sentence of ``langs`` with ``voice``; print JSON figures per language."""
    from configs.settings import get_settings
    from pipelines.media import write_wav
    from pipelines.tts import TTSStage, espeak_voice_for

    settings = get_settings()
    stage = TTSStage(settings.tts, settings.storage.models_dir)
    figures: dict[str, dict[str, float]] = {}
    t_load = time.perf_counter()
    for lang in langs:
        spec = f"espeak:{espeak_voice_for(lang)}" if voice == "espeak" else voice
        synth = stage.synthesizer(spec, lang)
        audio_s = wall_s = cpu_s = 0.0
        for i, text in enumerate(SENTENCES[lang]):
            t0, c0 = time.perf_counter(), time.process_time()
            samples = synth.synthesize(text)
            wall_s += time.perf_counter() - t0
            cpu_s += time.process_time() - c0
            audio_s += samples.size / synth.sample_rate_hz
            write_wav(out_dir / f"{lang}-{i:02d}.wav", samples, synth.sample_rate_hz)
        figures[lang] = {"audio_s": audio_s, "wall_s": wall_s, "cpu_s": cpu_s}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"figures": figures, "peak_rss_mb": peak, "total_s": time.perf_counter() - t_load}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voices", nargs="*", default=["espeak", "kokoro:jm_kumo", "kokoro:jf_alpha"])
    parser.add_argument("--langs", nargs="*", default=list(SENTENCES))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--no-asr", action="store_true", help="speed and memory only (no re-transcription)")
    parser.add_argument("--child", nargs=2, metavar=("VOICE", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        synth_child(args.child[0], args.langs, Path(args.child[1]))
        return

    from configs.settings import get_settings
    from pipelines.asr import WhisperASR

    settings = get_settings()
    asr = None if args.no_asr else WhisperASR(settings.asr, settings.storage.models_dir)
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT))}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for voice in args.voices:
            out = Path(tmp) / voice.replace(":", "_")
            out.mkdir()
            child = subprocess.run(
                [sys.executable, __file__, "--child", voice, str(out), "--langs", *args.langs],
                capture_output=True, text=True, env=env, check=True,
            )  # fmt: skip
            run = json.loads(child.stdout.strip().splitlines()[-1])
            for lang in args.langs:
                heard = [
                    " ".join(s.text for s in asr(out / f"{lang}-{i:02d}.wav", language=lang).segments)
                    for i in range(len(SENTENCES[lang]))
                    if asr is not None
                ]
                errors = [sentence_cer(lang, i, h) for i, h in enumerate(heard)] or [float("nan")]
                f = run["figures"][lang]
                row = {
                    "voice": voice, "lang": lang, "cer": sum(errors) / len(errors), "cer_max": max(errors),
                    "speed_x": f["audio_s"] / f["wall_s"], "audio_s": f["audio_s"], "peak_rss_mb": run["peak_rss_mb"],
                    "audio_per_cpu_s": f["audio_s"] / max(f["cpu_s"], 1e-9),
                    "heard": heard,
                }  # fmt: skip
                results.append(row)
                print(
                    f"{voice:<16} {lang}  CER {row['cer'] * 100:5.1f} % (worst {row['cer_max'] * 100:5.1f} %)  "
                    f"{row['speed_x']:5.2f}x real time ({row['audio_per_cpu_s']:.2f} s of audio per CPU second)  "
                    f"peak RSS {row['peak_rss_mb']:.0f} MB",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
