"""Intelligibility, speed and memory of the Russian voices (issue 14, first slice).

24 Russian sentences (numbers, dates, names, questions) are spoken by espeak-ng and by each installed
RHVoice voice of the catalog; the bundled Whisper (base, forced to ``ru``) re-transcribes every clip, and the
character error rate (CER) against the spoken text is reported per voice. Each voice synthesises in its own
child process, so the speed (seconds of audio per second of wall time) and the peak RSS are that engine's.

    .venv/bin/python bench/tts_cer.py [--voices espeak:ru rhvoice:aleksandr ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(ROOT))

SENTENCES_RU = [
    "Привет! Как у тебя дела сегодня?",
    "Поезд отправляется в 7 часов 45 минут с третьего пути.",
    "Анна Петровна живёт в Санкт-Петербурге уже двадцать лет.",
    "Сколько стоит этот билет до Москвы?",
    "В 2024 году в городе открыли 12 новых школ.",
    "Пожалуйста, закройте окно, на улице холодно.",
    "Михаил Булгаков написал роман «Мастер и Маргарита».",
    "Почему небо голубое, а закат красный?",
    "Температура воды сегодня плюс восемнадцать градусов.",
    "Наша компания выросла на 35 процентов за год.",
    "Где находится ближайшая аптека?",
    "Дмитрий Менделеев создал периодическую таблицу элементов.",
    "Встреча назначена на пятое декабря, в среду.",
    "Я люблю читать книги по вечерам у камина.",
    "Вы можете говорить немного медленнее?",
    "Телефон службы поддержки: восемь, восемьсот, пятьсот пятьдесят пять.",
    "Байкал — самое глубокое озеро на планете.",
    "Ольга купила три килограмма яблок и два литра молока.",
    "Когда начинается следующий урок?",
    "Машина едет со скоростью 90 километров в час.",
    "Завтра обещают дождь и сильный ветер.",
    "Сергей Королёв руководил созданием первого спутника.",
    "Это лучший день в моей жизни!",
    "Сколько лет вашему сыну?",
]


def normalise(text: str) -> str:
    """Lowercase, ё→е, punctuation dropped, spaces collapsed: what CER compares."""
    text = text.lower().replace("ё", "е").replace("%", " процентов")
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate of ``hypothesis`` against ``reference`` (both normalised)."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    return edit_distance(ref, hyp) / max(1, len(ref))


# The same sentences with the numbers in words: a transcript may write a number either way, and the CER
# of a sentence is the lowest over these forms (a voice is not penalised for Whisper's choice of digits or words).
SPOKEN_RU = {
    1: ("Поезд отправляется в семь часов сорок пять минут с третьего пути.",),
    2: ("Анна Петровна живёт в Санкт-Петербурге уже 20 лет.",),
    4: ("В две тысячи двадцать четвёртом году в городе открыли двенадцать новых школ.",),
    8: ("Температура воды сегодня плюс 18 градусов.",),
    9: ("Наша компания выросла на тридцать пять процентов за год.",),
    12: ("Встреча назначена на 5 декабря, в среду.",),
    15: ("Телефон службы поддержки: 8, 800, 555.", "Телефон службы поддержки: 8 800 555."),
    17: ("Ольга купила 3 килограмма яблок и 2 литра молока.",),
    19: ("Машина едет со скоростью девяносто километров в час.",),
}


def sentence_cer(i: int, heard: str) -> float:
    return min(cer(ref, heard) for ref in (SENTENCES_RU[i], *SPOKEN_RU.get(i, ())))


def _rss_mb() -> float:
    """This process's resident memory now (MB)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def synth_child(voice: str, out_dir: Path) -> None:
    """In a child process: speak every sentence with ``voice`` into out_dir/NN.wav; print JSON figures."""
    from configs.settings import get_settings
    from pipelines.media import write_wav
    from pipelines.tts import TTSStage

    settings = get_settings()
    stage = TTSStage(settings.tts, settings.storage.models_dir)
    rss_before_mb = _rss_mb()
    synth = stage.synthesizer(voice)
    audio_s = wall_s = 0.0
    for i, text in enumerate(SENTENCES_RU):
        t0 = time.perf_counter()
        samples = synth.synthesize(text)
        wall_s += time.perf_counter() - t0
        audio_s += samples.size / synth.sample_rate_hz
        write_wav(out_dir / f"{i:02d}.wav", samples, synth.sample_rate_hz)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_after_mb = _rss_mb()
    print(
        json.dumps(
            {
                "voice": voice,
                "audio_s": audio_s,
                "wall_s": wall_s,
                "peak_rss_mb": rss_mb,
                "rss_before_mb": rss_before_mb,
                "engine_rss_mb": rss_after_mb - rss_before_mb,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voices", nargs="*", default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--child", nargs=2, metavar=("VOICE", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        synth_child(args.child[0], Path(args.child[1]))
        return

    from configs.settings import get_settings
    from pipelines.asr import WhisperASR
    from pipelines.voices import CATALOG, is_installed

    settings = get_settings()
    models_dir = settings.storage.models_dir
    voices = args.voices or ["espeak:ru"] + [
        v.id for v in CATALOG.values() if "ru" in v.languages and is_installed(v, models_dir)
    ]
    asr = WhisperASR(settings.asr, models_dir)
    results = []
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT))}
    with tempfile.TemporaryDirectory() as tmp:
        for voice in voices:
            out = Path(tmp) / voice.replace(":", "_")
            out.mkdir()
            child = subprocess.run(
                [sys.executable, __file__, "--child", voice, str(out)], capture_output=True, text=True, env=env,
                check=True,
            )  # fmt: skip
            figures = json.loads(child.stdout.strip().splitlines()[-1])
            errors, heard = [], []
            for i in range(len(SENTENCES_RU)):
                heard.append(" ".join(s.text for s in asr(out / f"{i:02d}.wav", language="ru").segments))
                errors.append(sentence_cer(i, heard[-1]))
            row = {
                **figures, "cer": sum(errors) / len(errors), "cer_max": max(errors),
                "cer_median": sorted(errors)[len(errors) // 2], "speed_x": figures["audio_s"] / figures["wall_s"],
                "sentences": len(errors), "heard": heard,
            }  # fmt: skip
            results.append(row)
            print(
                f"{voice:<20} CER {row['cer'] * 100:5.1f} % (median {row['cer_median'] * 100:4.1f} %, worst "
                f"{row['cer_max'] * 100:5.1f} %)  {row['speed_x']:6.1f}x real time  peak RSS {row['peak_rss_mb']:.0f} MB "
                f"(the voice and its synthesis add {row['engine_rss_mb']:.0f} MB to the process)",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
