"""The one settings tree.

Sources, highest priority first: init kwargs, environment (``VT_`` prefix, ``__`` nesting),
``.env``, an optional YAML file (``VT_CONFIG_FILE`` or ``configs/settings.yaml``), defaults.
The spec's top-level names (PROJECT_NAME, VERSION, DEBUG, LOG_LEVEL, LOG_DIR, MAX_FILE_SIZE)
are also read unprefixed.
"""

from __future__ import annotations

import json
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, Field, TypeAdapter, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

DEFAULT_YAML = Path(__file__).with_name("settings.yaml")
# The most speakers a job may name or the diarization may count (settings diarize.*, a job's speakers and
# min/max_speakers): spectral clustering past this is noise, and each speaker needs a voice of their own.
SPEAKERS_LIMIT = 20


def _default_models_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "videotranslator" / "models"


class ASRSettings(BaseModel):
    model: str = Field(
        default="bundled:whisper-base",
        description="'bundled:whisper-base', a standard name ('large-v3'), a HF repo id or a local folder.",
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str = Field(default="auto", description="'auto' = int8 on CPU, float16 on CUDA.")
    cpu_threads: int = 0
    beam_size: int = 1
    batch_size: int = Field(
        default=8,
        description="VAD segments decoded together (faster-whisper's BatchedInferencePipeline); 0 = sequential.",
    )
    vad_filter: bool = True
    min_silence_ms: int = 500


class TranslatorSettings(BaseModel):
    backend: Literal["auto", "llama_cpp", "openai", "vllm"] = "auto"
    model: str = Field(
        default="bundled:qwen2.5-coder-1.5b-instruct",
        description="'bundled:...', a .gguf path, a HF repo id (llama_cpp/vllm) or a served model name (openai).",
    )
    gguf_file: str = Field(default="*Q4_K_M.gguf", description="File pattern when model is a HF repo id (llama_cpp).")
    base_url: str = "http://127.0.0.1:8001/v1"
    api_key: str = "EMPTY"
    n_ctx: int = 4096
    n_threads: int = 0
    n_batch: int = Field(default=512, ge=8, description="llama.cpp's prompt batch: tokens evaluated per decode call (llama_cpp).")
    prompt_cache_mb: int = Field(
        default=128,
        ge=0,
        description="KV states of recent prompts kept in RAM, so a prompt that shares a prefix with an earlier one "
        "(not only the previous one) evaluates only the rest (llama_cpp); 0: off.",
    )
    extra_buffers: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="llama.cpp's extra buffer types (CPU weight repack, AMX). 'auto' turns them off only where "
        "the build has AMX kernels and the CPU has AMX (ggml's AMX path crashes there).",
    )
    batch_size: int = 8
    json_grammar: Literal["on", "retries", "off"] = Field(
        default="retries",
        description="Constrain answers with their JSON schema (a grammar in llama.cpp): 'on' every request; 'retries' "
        "only a batch's second try after an unusable answer and the retries of failed lines (greedy decoding almost "
        "always writes the JSON the example shows, and the grammar costs time per token), and every try where the "
        "prompt has no example (German targets, few_shot off); 'off' never.",
    )
    context_sentences: int = 2
    max_retries: int = 2
    temperature: float = 0.0
    timeout_s: float = 120.0
    shorten_ratio: float = Field(
        default=0.25,
        description="Ask for a shorter rendering when speech still overflows its slot at max speed by this ratio; 0 disables.",
    )
    glossary_file: Path | None = None
    # Issue 16: checks on each answer, the job's name glossary and prompt variants (judged by bench/mt.py).
    min_length_ratio: float = Field(default=0.4, ge=0, description="Translation/source length below this: retried (0: off).")
    max_length_ratio: float = Field(default=2.5, ge=0, description="Translation/source length above this: retried (0: off).")
    name_glossary: bool = Field(default=True, description="Ask once per job for the target form of capitalised names.")
    retry_together: bool = Field(
        default=False,
        description="Lines of a batch that fail a check: one retry request a round for all of them, with a note per "
        "line, instead of halving the batch (each line then alone). Off: on the bench lecture it cost more tokens and "
        "the 1.5B model mixed the lines up (docs/BENCHMARKS.md, issue 17).",
    )
    name_min_count: int = Field(
        default=2,
        ge=1,
        description="Times a name must occur in the job to go into the name request (1: every capitalised name). A name "
        "said once cannot come out two ways, and no recurring name means no request (issue 17: ~20 % of the stage).",
    )
    few_shot: bool = Field(default=True, description="Send a short example exchange per language pair.")
    system_prompt_language: Literal["english", "target"] = Field(
        default="english", description="'target': the system prompt in the target language where one is written."
    )


class OpenAISpeechSettings(BaseModel):
    """The server behind ``openai:<voice>`` voices: any OpenAI-compatible ``POST /v1/audio/speech``."""

    base_url: str = Field(default="http://127.0.0.1:8000/v1", description="Up to and including /v1.")
    model: str = Field(default="tts-1", description="Sent as the request's ``model``.")
    api_key: str = Field(default="EMPTY", description="Sent as ``Authorization: Bearer <key>``.")
    response_format: Literal["wav", "pcm"] = Field(
        default="wav", description="'pcm': raw 16-bit little-endian mono at pcm_sample_rate_hz (OpenAI's pcm)."
    )
    pcm_sample_rate_hz: int = Field(default=24000, gt=0)
    timeout_s: float = Field(default=60.0, gt=0, description="One speech request.")
    check_timeout_s: float = Field(
        default=3.0, gt=0, description="The reachability check (GET <base_url>/models) before a job's work."
    )
    max_retries: int = Field(default=2, ge=0, description="Retries on transient errors (connection, 429, 5xx).")


class TTSSettings(BaseModel):
    voices: dict[str, str] = Field(
        default_factory=lambda: {"en": "piper:bundled:en_US-joe-medium"},
        description="Language code -> voice: 'rhvoice:<voice>', 'kokoro:<voice>', 'piper:<model.onnx|bundled:name>', "
        "'espeak:<voice>', 'mbrola:<voice>' (opt-in) or 'openai:<voice>' (tts.openai's server) "
        "(`videotranslator voices list`). Others use the catalog's default (measured), else espeak-ng.",
    )
    espeak_rate_wpm: int = Field(default=175, description="espeak-ng's speed, also for mbrola voices.")
    speaker_voices: dict[str, str] = Field(
        default_factory=dict,
        description="Speaker label (diarize: 'S1', 'S2', ...) -> voice spec, for every target language; "
        "others get distinct catalog voices of the language (pipelines/voices.py speaker_voices).",
    )
    normalize_text: bool = Field(
        default=True, description="Spell out numbers, dates, currency and abbreviations before synthesis."
    )
    openai: OpenAISpeechSettings = Field(default_factory=OpenAISpeechSettings)
    kokoro_threads: int = Field(
        default=0, ge=0, description="ONNX Runtime threads of the Kokoro voices (one engine a process); 0: one a core."
    )


class DiarizeSettings(BaseModel):
    """Who speaks (pipelines/diarize.py). On by default: it costs 0.03-0.06 x real time on 2 cores (one d-vector
    call per 1.5 s of speech, docs/BENCHMARKS.md "Diarization"), small next to ASR, translation and TTS, and a monologue
    stops at a cheap spread check (no clustering)."""

    enabled: bool = Field(
        default=True, description="Label each word with a speaker; split sentences at speaker changes."
    )
    min_speakers: int = Field(
        default=1, ge=1, le=SPEAKERS_LIMIT, description="Fewest speakers the automatic count may find."
    )
    max_speakers: int = Field(
        default=8, ge=1, le=SPEAKERS_LIMIT, description="Most speakers the automatic count may find."
    )
    # One 80-frame embedder call per window every 1.5 s (docs/BENCHMARKS.md "Diarization", 2026-12-05 rerun): the
    # int8 LSTM embedder costs ~60 ms a call on a core without AVX-512 VNNI, so 1.5 s windows every 0.75 s (four
    # calls per 1.5 s) took 0.14-0.17 x real time there; this takes 0.03-0.06 with 97-100 % of speech right.
    window_s: float = Field(default=0.81, gt=0.8, description="Seconds of speech per embedding window.")
    hop_s: float = Field(default=1.5, gt=0, description="Seconds between window starts.")
    energy_gate_db: float = Field(default=20.0, ge=0, description="Windows this far below the median RMS are left out.")
    min_windows: int = Field(default=8, ge=2, description="Fewer windows than this: one speaker (too little to count).")
    single_quantile: float = Field(
        default=0.1, gt=0, lt=1, description="Quantile of the windows' similarity to their centroid..."
    )
    single_similarity: float = Field(
        default=0.6, gt=0, le=1, description="...at or above which the input is one speaker and nothing is clustered."
    )
    merge_similarity: float = Field(
        default=0.5, gt=0, le=1, description="Found clusters whose centroids are this alike (cosine) are one speaker."
    )
    threads: int = Field(default=2, ge=1, description="onnxruntime threads for the embedder.")
    subtitle_labels: bool = Field(
        default=False, description="Start a subtitle cue with the speaker ('S2: ...') where the speaker changes."
    )

    @model_validator(mode="after")
    def _min_le_max(self) -> DiarizeSettings:
        if self.min_speakers > self.max_speakers:
            raise ValueError(f"diarize.min_speakers ({self.min_speakers}) > diarize.max_speakers ({self.max_speakers})")
        return self


class FitSettings(BaseModel):
    max_speed: float = 1.35
    min_gap_s: float = 0.05


# What plays under the dub (mix.background, and a job's own choice).
Background = Literal["separate", "duck", "none"]


class MixSettings(BaseModel):
    background: Background = Field(
        default="separate",
        description="What plays under the dub: 'separate' the original's background with its voice removed "
        "(the separation model, `videotranslator models pull`), 'duck' the whole original lowered by duck_gain_db "
        "under each line, 'none' the dub alone. (The old voice_only=true means 'none'.)",
    )
    duck_gain_db: float = Field(default=-14.0, description="background=duck: the original's gain under the dub.")
    ramp_ms: float = 120.0
    sample_rate_hz: int = 48000

    @model_validator(mode="before")
    @classmethod
    def _voice_only_alias(cls, data: Any) -> Any:
        """The deprecated ``voice_only`` (before ``background``): true means background 'none', false 'duck'."""
        if isinstance(data, dict) and "voice_only" in data:
            data = dict(data)
            voice_only = TypeAdapter(bool).validate_python(data.pop("voice_only"))
            logging.getLogger(__name__).warning("mix.voice_only is deprecated: use mix.background ('none' or 'duck')")
            data.setdefault("background", "none" if voice_only else "duck")
        return data


class StorageSettings(BaseModel):
    root: Path = Path("var")
    cache_dir: Path = Path("var/cache")
    models_dir: Path = Field(default_factory=_default_models_dir)
    quota_bytes: int | None = Field(
        default=None, ge=0, description="Cap on the bytes under root (uploads, job artifacts); None: no cap."
    )
    retention_ttl_s: float | None = Field(
        default=None, gt=0, description="Remove uploads, job folders and stage-cache files older than this; None: keep."
    )
    retention_interval_s: float = Field(default=600.0, gt=0, description="How often the retention sweep runs.")


class UploadSettings(BaseModel):
    """Resumable uploads (``POST /files/uploads``, then ``PUT`` chunks with ``Content-Range``)."""

    chunk_max_bytes: int = Field(
        default=4 * 1024**2, ge=1, description="Largest chunk body one PUT may carry (bytes); bigger is 413 before reading."
    )
    session_ttl_s: float = Field(
        default=24 * 3600.0, gt=0, description="An upload session idle this long expires (refused, then swept)."
    )
    resumable_threshold_bytes: int = Field(
        default=8 * 1024**2, ge=0, description="The web page sends files larger than this as resumable chunked uploads."
    )


def split_list(value: Any) -> Any:
    """A list given in the environment: a JSON list, or comma-separated items."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


class ServiceSettings(BaseModel):
    job_store_url: str = "sqlite:///var/jobs.db"
    max_queued_jobs: int = 16
    max_running_jobs: int = 1
    retry_after_s: int = 10
    max_text_items: int = 256
    max_text_chars: int = 20_000
    max_audio_bytes: int = Field(default=25 * 1024**2, description="Largest file /v1/audio/* accepts (bytes).")
    max_speech_chars: int = Field(default=4096, description="Longest input /v1/audio/speech accepts (characters).")
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        repr=False,
        description="Bearer keys for the API, /v1 and the bridge (VT_API_KEYS: a JSON list or comma-separated). "
        "Empty: no auth, allowed only on a loopback address.",
    )
    rate_limit_ip_per_s: float = Field(default=0.0, ge=0, description="Requests a second per client IP; 0: no limit.")
    rate_limit_key_per_s: float = Field(default=0.0, ge=0, description="Requests a second per API key; 0: no limit.")
    rate_limit_burst: int = Field(default=60, ge=1, description="Requests a client may send at once before the rate applies.")
    rate_limit_shared: bool = Field(
        default=False,
        description="Keep the rate-limit buckets in the job store's database, one limit for all ingress replicas "
        "(a write per request: use with PostgreSQL). False: each replica counts alone, so N replicas allow N x the rates.",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list, description="Origins allowed by CORS; empty: CORS off.")
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["localhost", "127.0.0.1", "::1"],
        description="Host header names the HTTP service answers (DNS rebinding defence): names, '*.example.com' or "
        "'*' (VT_SERVICE__ALLOWED_HOSTS: a JSON list or comma-separated). Another Host is 400 invalid_host.",
    )

    @field_validator("api_keys", "cors_origins", "allowed_hosts", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        return split_list(value)
    job_lease_s: float = Field(
        default=20.0, gt=0, description="A running job whose worker has not heartbeaten for this long is requeued."
    )


class QueueSettings(BaseModel):
    enabled: bool = Field(
        default=False, description="Run the RabbitMQ consumer (and a job worker) inside the Serve app's job runner."
    )
    mode: Literal["local", "rabbitmq"] = Field(
        default="local",
        description='How POST /jobs submits: "local" records the job for this app\'s job runner; "rabbitmq" '
        "publishes it to request_queue (publisher confirms) for bridge instances to run.",
    )
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    prefetch_count: int = 4
    request_queue: str = "videotranslator.rpc"
    dead_letter_queue: str = "videotranslator.rpc.dlq"
    events_exchange: str = "videotranslator.events"
    max_batch_size: int = Field(default=32, description="Largest JSON-RPC batch the bridge accepts; more is -32600.")
    reconnect_interval_s: float = Field(default=2.0, description="Seconds between reconnection attempts (connect_robust).")
    events_poll_s: float = Field(default=1.0, description="How often the bridge polls the job store for progress events.")
    backpressure_poll_s: float = Field(default=1.0, description="While paused on a full job queue, how often to look again.")
    shutdown_timeout_s: float = Field(default=30.0, description="On SIGTERM, how long to wait for in-flight messages.")
    publish_timeout_s: float = Field(
        default=5.0, description="Queue mode: how long POST /jobs waits to connect and for the broker's confirm; then 503."
    )
    input_dir: str = Field(
        default="inputs",
        description="The bridge's translate_video/transcribe take file ids, or paths in this folder under storage.root "
        "(never uploads/ or jobs/); empty: file ids only.",
    )


class FetchSettings(BaseModel):
    """URL inputs (``videotranslator translate URL``, ``POST /jobs {"url"}``): fetched with yt-dlp in a child process."""

    allow_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts, IP addresses or CIDR networks a URL may reach although they are loopback, link-local, "
        "private or multicast (VT_FETCH__ALLOW_HOSTS: a JSON list or comma-separated); empty: public addresses only.",
    )
    socket_timeout_s: float = Field(default=20.0, gt=0, description="Connect and read timeout of each request.")
    timeout_s: float = Field(default=1800.0, gt=0, description="The whole download, redirects and retries included.")
    min_rate_bytes_s: int = Field(
        default=2048, ge=0, description="Slower than this over rate_window_s is a timeout (a trickling server); 0: off."
    )
    rate_window_s: float = Field(default=60.0, gt=0, description="The window min_rate_bytes_s is measured over.")
    cache_ttl_s: float = Field(
        default=86400.0, ge=0, description="A URL fetched this recently is not fetched again (the file is kept by content)."
    )

    @field_validator("allow_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        return split_list(value)


class BatchSettings(BaseModel):
    chunk_max_s: float = 30.0
    asr_actors: int = 1
    asr_batch_size: int = 4
    translate_actors: int = 1
    tts_actors: int = 1
    diarize_actors: int = Field(
        default=1, ge=1, description="The diarization pool (a stage of the batch while diarize.enabled)."
    )
    separate_actors: int = Field(
        default=1, ge=1, description="The separation pool (a stage of the batch when a dub has background 'separate')."
    )
    num_cpus_per_actor: float = 1.0
    num_gpus_per_actor: float = 0.0


class PipelineSettings(BaseModel):
    """How the runner schedules a job's stages."""

    overlap: bool = Field(
        default=False,
        description="Overlap the stages inside one job: translate sentences while ASR goes on, speak lines while "
        "later ones are translated (threads; the same outputs as one stage after another). False: strictly in turn "
        "(the default until bench/e2e.py --overlap both shows it no slower on 2 cores; see docs/BENCHMARKS.md).",
    )
    queue_size: int = Field(default=8, ge=1, description="Items each overlapped stage may run ahead of the next.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="VT_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
    )

    PROJECT_NAME: str = Field(default="VideoTranslator", validation_alias=AliasChoices("VT_PROJECT_NAME", "PROJECT_NAME"))
    VERSION: str = Field(default="0.1.0", validation_alias=AliasChoices("VT_VERSION", "VERSION"))
    DEBUG: bool = Field(default=False, validation_alias=AliasChoices("VT_DEBUG", "DEBUG"))
    LOG_LEVEL: str = Field(default="INFO", validation_alias=AliasChoices("VT_LOG_LEVEL", "LOG_LEVEL"))
    LOG_DIR: Path = Field(default=Path("var/log"), validation_alias=AliasChoices("VT_LOG_DIR", "LOG_DIR"))
    MAX_FILE_SIZE: int = Field(
        default=2 * 1024**3, validation_alias=AliasChoices("VT_MAX_FILE_SIZE", "MAX_FILE_SIZE")
    )
    MAX_DURATION: float = Field(  # seconds of media a job may have (probed, then checked again when decoded)
        default=4 * 3600.0, gt=0, validation_alias=AliasChoices("VT_MAX_DURATION", "MAX_DURATION")
    )
    # The name for the keys; merged into service.api_keys (VT_SERVICE__API_KEYS works too).
    API_KEYS: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=AliasChoices("VT_API_KEYS"), repr=False, exclude=True
    )

    asr: ASRSettings = Field(default_factory=ASRSettings)
    translator: TranslatorSettings = Field(default_factory=TranslatorSettings)
    tts: TTSSettings = Field(default_factory=TTSSettings)
    fit: FitSettings = Field(default_factory=FitSettings)
    diarize: DiarizeSettings = Field(default_factory=DiarizeSettings)
    mix: MixSettings = Field(default_factory=MixSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    upload: UploadSettings = Field(default_factory=UploadSettings)
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    fetch: FetchSettings = Field(default_factory=FetchSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)

    @field_validator("API_KEYS", mode="before")
    @classmethod
    def _split_api_keys(cls, value: Any) -> Any:
        return split_list(value)

    @model_validator(mode="after")
    def _debug_means_debug_logs(self) -> Settings:
        """``DEBUG=true`` turns on debug logs unless LOG_LEVEL is set too (never tracebacks in responses)."""
        if self.DEBUG and "LOG_LEVEL" not in self.model_fields_set:
            self.LOG_LEVEL = "DEBUG"
        return self

    @model_validator(mode="after")
    def _merge_api_keys(self) -> Settings:
        if self.API_KEYS:
            self.service.api_keys = list(dict.fromkeys([*self.service.api_keys, *self.API_KEYS]))
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_file = Path(os.environ.get("VT_CONFIG_FILE", DEFAULT_YAML))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        if yaml_file.is_file():
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file))
        sources.append(file_secret_settings)
        return tuple(sources)


@lru_cache(maxsize=1)
def get_settings(**overrides: Any) -> Settings:
    """The process-wide settings. Only entrypoints call this; library code receives a section."""
    return Settings(**overrides)
