"""Inference endpoints: OpenAI-compatible audio (transcriptions, translations, speech), our /v1/translate,
and /v1/models. JSON answers carry the OpenAI fields at the top level (SDKs read them there) plus
``status`` and ``message``; errors are the usual envelope."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from serve_app.api.deps import CSRFExpectedDep, InferenceDep, SettingsDep
from serve_app.api.errors import InvalidRequest
from serve_app.api.schemas import ModelList, SpeechRequest, TranslateRequest, TranslateResponse, VoiceList
from serve_app.api.services import TRANSCRIPT_FORMATS
from serve_app.api.upload import StreamingForm

router = APIRouter(prefix="/v1", tags=["v1"])


def _audio_form(with_language: bool) -> dict[str, Any]:
    props: dict[str, Any] = {
        "file": {"type": "string", "format": "binary"},
        "model": {"type": "string", "default": "whisper-1"},
        "response_format": {"type": "string", "enum": list(TRANSCRIPT_FORMATS), "default": "json"},
        "prompt": {"type": "string", "description": "accepted, ignored"},
        "temperature": {"type": "number", "description": "accepted, ignored"},
    }
    if with_language:
        props["language"] = {"type": "string", "description": "ISO 639-1; detected when absent"}
    schema = {"type": "object", "required": ["file"], "properties": props}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


async def _audio_request(
    request: Request, inference: InferenceDep, settings: SettingsDep, csrf_expected: str | None, *, task: str
) -> Response:
    form = StreamingForm(request, csrf_expected=csrf_expected)
    try:
        if not await form.open_file():
            raise InvalidRequest("no file: send the audio in the multipart field 'file'")
        audio = await form.read_file(settings.service.max_audio_bytes)
        await form.finish()
    except Exception:
        await form.drain()
        raise
    response_format = (form.field("response_format") or "json").strip()
    if response_format not in TRANSCRIPT_FORMATS:
        raise InvalidRequest(f"response_format must be one of {', '.join(TRANSCRIPT_FORMATS)}")
    inference.check_asr_model(form.field("model"))
    language = (form.field("language") or "").strip() or None
    body, media_type = await inference.transcribe(audio, language=language, response_format=response_format, task=task)
    if isinstance(body, dict):
        verb = "translated" if task == "translate" else "transcribed"
        return JSONResponse({"status": "success", "message": verb, **body})
    return Response(content=body, media_type=media_type)


@router.post("/audio/transcriptions", openapi_extra=_audio_form(True))
async def transcriptions(
    request: Request, inference: InferenceDep, settings: SettingsDep, csrf_expected: CSRFExpectedDep
) -> Response:
    """OpenAI-compatible transcription. ``model``: default, whisper-1, none or the configured ASR model."""
    return await _audio_request(request, inference, settings, csrf_expected, task="transcribe")


@router.post("/audio/translations", openapi_extra=_audio_form(True))
async def translations(
    request: Request, inference: InferenceDep, settings: SettingsDep, csrf_expected: CSRFExpectedDep
) -> Response:
    """OpenAI-compatible: speech in any language → English text (Whisper's own translate task)."""
    return await _audio_request(request, inference, settings, csrf_expected, task="translate")


@router.post(
    "/audio/speech",
    response_class=Response,
    responses={200: {"content": {"audio/wav": {}, "audio/mpeg": {}}, "description": "the audio"}},
)
async def speech(body: SpeechRequest, inference: InferenceDep) -> Response:
    """OpenAI-compatible text to speech. ``voice``: a voice id from GET /v1/voices (rhvoice:irina, espeak:de), a
    configured voice's short name (en_US-joe-medium), a language code (ru), or an OpenAI voice name (alloy, …: the
    default voice of ``language``, an extra field, English without it). A bad voice is a 422."""
    audio, media_type = await inference.speech(
        body.input, voice=body.voice, response_format=body.response_format, language=body.language
    )
    return Response(content=audio, media_type=media_type)


@router.get("/voices", response_model=VoiceList)
async def voices(inference: InferenceDep, language: Annotated[str | None, Query(max_length=16)] = None) -> VoiceList:
    """The text-to-speech voices (``engine:voice`` ids, as POST /jobs ``voices`` and /v1/audio/speech take them):
    engine, languages, licence, whether commercial use is allowed, opt-in, installed, measured CER and speed, and
    which is each language's default. ``language``: only the voices of that language (422 for an unknown code)."""
    result = await inference.voices(language)
    rows = result["voices"]
    return VoiceList(message=f"{len(rows)} voice(s)", data=rows, defaults=result["defaults"])


@router.post("/translate", response_model=TranslateResponse)
async def translate(body: TranslateRequest, inference: InferenceDep) -> TranslateResponse:
    """Translate ``texts`` (same order and count back)."""
    result = await inference.translate_texts(
        body.texts, source_language=body.source_language, target_language=body.target_language, glossary=body.glossary
    )
    return TranslateResponse(
        message=f"translated {len(result)} text(s)", translations=result, data={"translations": result}
    )


@router.get("/models", response_model=ModelList)
async def models(inference: InferenceDep) -> ModelList:
    items = inference.models()
    return ModelList(message=f"{len(items)} model(s)", data=items)
