"""The bad-input corpus against the real service: ``get_application`` in-process (TestClient, the whole ASGI
stack) with a real JobWorker over fast fake model stages, the JSON-RPC handler (pure, no broker) and the CLI.

Every case ends in a 4xx with the envelope, a JSON-RPC error with the envelope, a one-line CLI error, a clean
job failure or (for input that is legitimately processable) a clean success. Never a 5xx or a traceback; the
service answers /healthz after each case, and a refused upload leaves nothing in storage. The table of
cases and results is in docs/RELIABILITY.md ("Bad input").
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pysubs2
import pytest

from tests.reliability import corpus
from tests.reliability.conftest import INJECTION, wait_job

# --------------------------------------------------------------------------- helpers


def uploads(settings: Any) -> set[str]:
    """Everything under the uploads folder (also hidden partial files)."""
    root = Path(settings.storage.root) / "uploads"
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.is_dir() else set()


def assert_clean_error(response: Any, status: int, code: str, *words: str) -> dict[str, Any]:
    """A 4xx with the envelope, a clear message (containing ``words``), no traceback and no server path."""
    assert response.status_code == status, response.text
    assert 400 <= status < 500
    body = response.json()
    assert body["status"] == "error" and body["error"]["code"] == code, body
    message = body["message"]
    assert message and body["error"]["message"] == message
    for word in words:
        assert word.lower() in message.lower(), message
    assert "Traceback" not in response.text and "/tmp/" not in response.text and ".part" not in message
    return body


def post_file(client: Any, path: Path, url: str = "/files/upload", *, name: str | None = None, **fields: str) -> Any:
    with open(path, "rb") as fh:
        return client.post(url, files={"file": (name or path.name, fh, "video/mp4")}, data=fields)


@pytest.fixture
def check(client: Any, settings: Any) -> Callable[[], None]:
    """After a case: the service still answers, and no upload was left behind (compared with before)."""
    before = uploads(settings)

    def _check(*, stored: int = 0) -> None:
        assert client.get("/healthz").status_code == 200
        assert len(uploads(settings) - before) == stored * 3  # a kept upload: its folder, the file, meta.json

    return _check


# --------------------------------------------------------------------------- media refused at upload (415)

REFUSED_MEDIA = {
    "zero_bytes": ("empty",),
    "text_as_mp4": ("not a readable media file", "notes.mp4"),
    "truncated_mp4": ("not a readable media file",),
    "claims_three_hours": ("claims to last 10800 s", "header is wrong or it is truncated"),
    "unsupported_codec": ("no audio or video stream that ffmpeg can decode",),
    "huge_dimensions": ("16000x16000", "8192x8192"),
    "hls_local_file": ("playlist",),
    "hls_url": ("playlist",),
    "concat_local_file": ("playlist",),
    "concat_url": ("playlist",),
}


@pytest.mark.parametrize("case", sorted(REFUSED_MEDIA))
@pytest.mark.parametrize("url", ["/files/upload", "/jobs/upload"])
def test_broken_media_is_refused_at_upload(
    client: Any, settings: Any, media: dict[str, Path], check: Any, case: str, url: str
) -> None:
    fields = {"target_languages": "ru"} if url == "/jobs/upload" else {}
    assert_clean_error(post_file(client, media[case], url, **fields), 415, "invalid_media", *REFUSED_MEDIA[case])
    check()
    assert client.get("/jobs").json()["data"]["jobs"] == []


# --------------------------------------------------------------------------- media accepted: the job decides

JOB_FAILS = {
    "header_only_mp4": ("invalid_media", "holds no media data"),
    "video_without_audio": ("no_audio_stream", "no audio stream"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(JOB_FAILS))
def test_media_without_usable_audio_fails_the_job_cleanly(
    client: Any, media: dict[str, Path], check: Any, case: str
) -> None:
    r = post_file(client, media[case], "/jobs/upload", target_languages="ru")
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["data"]["job_id"])
    code, words = JOB_FAILS[case]
    assert job["state"] == "failed" and job["error"]["code"] == code and words in job["error"]["message"]
    assert job["outputs"] == [] and "/" not in job["error"]["message"]
    check(stored=1)


@pytest.mark.slow
@pytest.mark.parametrize(("case", "sentences"), [("audio_without_video", 2), ("pure_silence", 0), ("one_ms_audio", 0)])
def test_processable_edge_media_succeeds(
    client: Any, media: dict[str, Path], check: Any, case: str, sentences: int
) -> None:
    """Audio only is dubbed into an audio-only mp4; silence and 1 ms give an empty transcript, and say so."""
    r = post_file(client, media[case], "/jobs/upload", target_languages="ru")
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["data"]["job_id"])
    assert job["state"] == "succeeded", job["error"]
    report_name = next(n for n in job["outputs"] if n.endswith(".report.json"))
    report = client.get(job["output_urls"][report_name]).json()
    assert report["sentence_count"] == sentences
    assert any(n.endswith(".ru.mp4") for n in job["outputs"])
    check(stored=1)


# --------------------------------------------------------------------------- hostile file names


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(corpus.HOSTILE_NAMES))
def test_hostile_file_names_are_stored_under_generated_ids(
    client: Any, settings: Any, media: dict[str, Path], check: Any, case: str
) -> None:
    name = corpus.HOSTILE_NAMES[case]
    r = post_file(client, media["good"], "/jobs/upload", name=name, target_languages="ru", mode="subtitles")
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["data"]["job_id"])
    assert job["state"] == "succeeded", job["error"]
    info = client.get(f"/files/{job['file_id']}").json()["data"]
    assert not any(c in info["filename"] for c in "/\\\x00") and len(info["filename"]) <= 255
    folder = Path(settings.storage.root) / "uploads" / job["file_id"]
    assert sorted(p.name for p in folder.iterdir()) == sorted([f"{job['file_id']}.mp4", "meta.json"])
    for output in job["outputs"]:  # output names are safe single path components
        assert re.fullmatch(r"[\w.\-]+", output) and ".." not in output and len(output) < 120, output
        assert client.get(job["output_urls"][output]).status_code == 200
    check(stored=1)


# --------------------------------------------------------------------------- request shapes


def _good_id(client: Any, media: dict[str, Path]) -> str:
    file_id: str = post_file(client, media["good"]).json()["data"]["file_id"]
    return file_id


GLOSSARY_10K = {f"term{i}": f"перевод{i}" for i in range(10_000)}
JSON_CASES: dict[str, tuple[str, dict[str, Any], int, str, tuple[str, ...]]] = {
    # name: (path, request kwargs ({file_id} is replaced), status, code, words in the message)
    "malformed JSON": ("/jobs", {"content": b'{"file_id": ', "headers": {"content-type": "application/json"}},
                       422, "invalid_json", ("not valid JSON",)),
    "JSON not an object": ("/jobs", {"json": ["ru"]}, 422, "validation_error", ("dictionary or object",)),
    "wrong content type (text/plain JSON)": ("/jobs", {"content": b'{"file_id": "x"}', "headers": {"content-type": "text/plain"}},
                                              422, "validation_error", ("dictionary or object",)),
    "invalid UTF-8": ("/jobs", {"content": b'{"file_id": "\xff"}', "headers": {"content-type": "application/json"}},
                      400, "bad_request", ("parsing the body",)),
    "unknown field": ("/jobs", {"json": {"file_id": "{file_id}", "target_languages": ["ru"], "webhook": "http://x"}},
                      422, "validation_error", ("webhook", "not permitted")),
    "missing field": ("/jobs", {"json": {"file_id": "{file_id}"}}, 422, "validation_error", ("target_languages", "required")),
    "ill-typed field": ("/jobs", {"json": {"file_id": "{file_id}", "target_languages": "ru"}},
                        422, "validation_error", ("target_languages", "valid list")),
    "ill-typed bool": ("/jobs", {"json": {"file_id": "{file_id}", "target_languages": ["ru"], "burn_in": "maybe"}},
                       422, "validation_error", ("burn_in",)),
    "unknown language code": ("/jobs", {"json": {"file_id": "{file_id}", "target_languages": ["xx"]}},
                              422, "unknown_language", ("'xx'",)),
    "unknown source language": ("/jobs", {"json": {"file_id": "{file_id}", "target_languages": ["ru"], "source_language": "klingon"}},
                                422, "unknown_language", ("klingon",)),
    "glossary with 10,000 entries": ("/jobs", {"json": {"file_id": "{file_id}", "target_languages": ["ru"], "glossary": GLOSSARY_10K}},
                                     422, "validation_error", ("glossary", "at most 2000")),
    "glossary entry of 1 MB": ("/jobs", {"json": {"file_id": "{file_id}", "target_languages": ["ru"], "glossary": {"a": "x" * 2**20}}},
                               422, "validation_error", ("glossary", "at most 500")),
    "file id with ../": ("/jobs", {"json": {"file_id": "../../etc/passwd", "target_languages": ["ru"]}},
                         404, "file_not_found", ("no uploaded file",)),
    "/v1/translate unknown language": ("/v1/translate", {"json": {"texts": ["hi"], "source_language": "en", "target_language": "xx"}},
                                       422, "unknown_language", ("'xx'",)),
    "/v1/translate glossary with 10,000 entries": ("/v1/translate", {"json": {"texts": ["hi"], "source_language": "en",
                                                   "target_language": "ru", "glossary": GLOSSARY_10K}},
                                                   413, "request_too_large", ("too much text",)),
    "/v1/translate ill-typed texts": ("/v1/translate", {"json": {"texts": [None], "source_language": "en", "target_language": "ru"}},
                                      422, "validation_error", ("texts.0",)),
    "/v1/audio/speech unknown voice": ("/v1/audio/speech", {"json": {"input": "hi", "voice": "piper:/etc/passwd"}},
                                       422, "invalid_voice", ("unknown voice",)),
    "list offset past 2**31": ("/jobs?offset=99999999999999999999999", {}, 422, "validation_error", ("offset",)),
}  # fmt: skip


@pytest.mark.parametrize("case", list(JSON_CASES))
def test_malformed_requests_get_a_clean_4xx(client: Any, media: dict[str, Path], check: Any, case: str) -> None:
    path, kwargs, status, code, words = JSON_CASES[case]
    file_id = _good_id(client, media)
    kwargs = json.loads(json.dumps(kwargs).replace("{file_id}", file_id)) if "json" in kwargs else kwargs
    method = client.get if path.startswith("/jobs?") else client.post
    assert_clean_error(method(path, **kwargs), status, code, *words)
    check(stored=1)  # only the upload this test made itself
    assert client.get("/jobs").json()["data"]["jobs"] == []


def _multipart(good: bytes) -> dict[str, tuple[str, dict[str, Any], int, str, tuple[str, ...]]]:
    return {
        "wrong content type (JSON to an upload)": ("/files/upload", {"json": {"file": "x"}}, 422, "invalid_request", ("multipart",)),
        "multipart with no file": ("/files/upload", {"files": {"note": (None, "x")}}, 422, "invalid_request", ("no file",)),
        "multipart with two files": ("/files/upload", {"files": [("file", ("a.mp4", good)), ("file", ("b.mp4", good))]},
                                     422, "invalid_request", ("exactly one file",)),
        "file in the wrong field": ("/files/upload", {"files": {"video": ("a.mp4", good)}}, 422, "invalid_request", ("exactly one file",)),
        "broken multipart boundary": ("/files/upload", {"content": b"garbage", "headers": {"content-type": "multipart/form-data; boundary=zz"}},
                                      422, "invalid_request", ("malformed multipart",)),
        "job upload with no file": ("/jobs/upload", {"files": {"target_languages": (None, "ru")}}, 422, "invalid_request", ("no file",)),
        "job upload with two files": ("/jobs/upload", {"files": [("file", ("a.mp4", good)), ("file", ("b.mp4", good)),
                                                                 ("target_languages", (None, "ru"))]},
                                      422, "invalid_request", ("exactly one file",)),
        "job upload missing target_languages": ("/jobs/upload", {"files": {"file": ("a.mp4", good)}},
                                                422, "invalid_request", ("target_languages",)),
        "job upload unknown language": ("/jobs/upload", {"files": {"file": ("a.mp4", good)}, "data": {"target_languages": "xx"}},
                                        422, "unknown_language", ("'xx'",)),
        "job upload ill-typed mode": ("/jobs/upload", {"files": {"file": ("a.mp4", good)}, "data": {"target_languages": "ru", "mode": "karaoke"}},
                                      422, "invalid_request", ("mode",)),
        "job upload glossary with 10,000 lines": ("/jobs/upload", {"files": {"file": ("a.mp4", good)}, "data": {
            "target_languages": "ru", "glossary": "\n".join(f"t{i} = p{i}" for i in range(10_000))}},
            422, "invalid_request", ("glossary", "too long")),
        "job upload glossary not JSON": ("/jobs/upload", {"files": {"file": ("a.mp4", good)}, "data": {"target_languages": "ru", "glossary": "{x"}},
                                         422, "invalid_request", ("glossary",)),
        "/v1 transcription of a text file": ("/v1/audio/transcriptions", {"files": {"file": ("a.mp3", b"hello world")}},
                                             415, "invalid_media", ("not a readable audio file",)),
        "/v1 transcription, unknown response_format": ("/v1/audio/transcriptions", {"files": {"file": ("a.mp4", good)}, "data": {"response_format": "xml"}},
                                                       422, "invalid_request", ("response_format",)),
        "/v1 transcription, unknown language": ("/v1/audio/transcriptions", {"files": {"file": ("a.mp4", good)}, "data": {"language": "xx"}},
                                                422, "unknown_language", ("'xx'",)),
    }  # fmt: skip


MULTIPART_NAMES = list(_multipart(b""))


@pytest.mark.parametrize("case", MULTIPART_NAMES)
def test_malformed_uploads_get_a_clean_4xx_and_leave_nothing(
    client: Any, media: dict[str, Path], check: Any, case: str
) -> None:
    path, kwargs, status, code, words = _multipart(media["good"].read_bytes())[case]
    assert_clean_error(client.post(path, **kwargs), status, code, *words)
    check()
    assert client.get("/jobs").json()["data"]["jobs"] == []


# --------------------------------------------------------------------------- subtitle injection


def _cues(text: str, fmt: str) -> list[Any]:
    return list(pysubs2.SSAFile.from_string(text, format_=fmt).events)


@pytest.mark.slow
def test_translation_cannot_inject_cues_into_srt_or_vtt(
    client: Any, media: dict[str, Path], fakes: dict[str, Any], check: Any
) -> None:
    """The translator returns cue breaks, a timestamp line, markup and a VTT header: the written files still
    hold one cue per cue the pipeline made, none reaching the injected 59:59, and no injected line survives."""
    fakes["translator"].inject = True
    r = post_file(client, media["good"], "/jobs/upload", target_languages="ru", mode="subtitles")
    job = wait_job(client, r.json()["data"]["job_id"])
    assert job["state"] == "succeeded", job["error"]
    for fmt, ext in (("srt", "srt"), ("vtt", "vtt")):
        name = next(n for n in job["outputs"] if n.endswith(f".ru.{ext}"))
        text = client.get(job["output_urls"][name]).text
        cues = _cues(text, fmt)
        blocks = [b for b in re.split(r"\n\s*\n", text.strip()) if "-->" in b]
        assert len(cues) == len(blocks) == text.count("-->") >= 1, text
        assert all(c.end < 60_000 for c in cues), [c.end for c in cues]  # none reaches the injected 59:59
        joined = "\n".join(c.plaintext for c in cues)
        assert "<script" not in joined and "00:59:59" not in joined and "-->" not in joined
        if fmt == "vtt":  # no block of the file is a header, a NOTE or a STYLE block but the first
            assert text.startswith("WEBVTT") and not re.search(r"\n\s*\n(WEBVTT|NOTE|STYLE)", text), text
    check(stored=1)


def test_transcript_cannot_inject_cues_into_v1_srt(client: Any, media: dict[str, Path], fakes: dict[str, Any]) -> None:
    fakes["asr"].speech = INJECTION.replace("\n", " \n ")
    r = post_file(client, media["good"], "/v1/audio/transcriptions", response_format="srt")
    assert r.status_code == 200, r.text
    cues = _cues(r.text, "srt")
    assert len(cues) == r.text.count("-->") and all("-->" not in c.plaintext for c in cues)
    assert all(c.end < 60_000 for c in cues)


def test_v1_translate_returns_injected_text_as_plain_json_data(client: Any) -> None:
    """/v1/translate writes no subtitle file: the text is data, returned intact inside JSON."""
    texts = ["1\n00:00:00,000 --> 00:00:01,000\n<b>x</b>\n\n2"]
    r = client.post("/v1/translate", json={"texts": texts, "source_language": "en", "target_language": "ru"})
    assert r.status_code == 200 and r.json()["translations"] == [f"[ru] {texts[0]}"]


# --------------------------------------------------------------------------- JSON-RPC (the handler, no broker)


@pytest.fixture
def rpc(services: Any, tmp_path: Path) -> Any:
    from serve_app.bridge.methods import MethodContext, build_methods
    from serve_app.bridge.rpc import RpcHandler

    class BridgeModels:
        def transcribe(self, media_path: Path, language: str | None) -> Any:
            raise AssertionError("not reached")

        def translate_texts(self, texts: list[str], source_language: str, target_language: str) -> list[str]:
            return texts

    ctx = MethodContext(service=services.jobs, models=BridgeModels(), storage_root=Path(services.settings.storage.root))
    handler = RpcHandler(build_methods(ctx), max_batch_size=32)
    return lambda body: asyncio.run(handler.handle(body, key="amqp:test"))


def _req(method: str, params: Any, id_: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params, "id": id_}


RPC_CASES: dict[str, tuple[bytes, int, str]] = {
    "a string, not an object": (b'"hello"', -32600, "must be an object"),
    "a number, not an object": (b"42", -32600, "must be an object"),
    "null": (b"null", -32600, "must be an object"),
    "a batch of numbers": (b"[1, 2]", -32600, "must be an object"),
    "an empty batch": (b"[]", -32600, "empty batch"),
    "a batch of 33 (over the cap of 32)": (json.dumps([_req("get_job", {"job_id": "a"}, i) for i in range(33)]).encode(),
                                           -32600, "at most 32"),
    "a batch of 10,000": (json.dumps([_req("get_job", {"job_id": "a"}, i) for i in range(10_000)]).encode(), -32600, "at most 32"),
    "malformed JSON": (b'{"jsonrpc": "2.0", "method": ', -32700, "not valid JSON"),
    "invalid UTF-8": (b'{"jsonrpc":"2.0","method":"get_job","params":{"job_id":"\xff"},"id":1}', -32700, "not valid JSON"),
    "nested 50,000 deep": (b"[" * 50_000 + b"]" * 50_000, -32700, "not valid JSON"),
    "unknown method": (json.dumps(_req("rm_rf", {})).encode(), -32601, "rm_rf"),
    "unknown param": (json.dumps(_req("get_job", {"job_id": "a", "sudo": True})).encode(), -32602, ""),
    "ill-typed param": (json.dumps(_req("get_job", {"job_id": 7})).encode(), -32602, "job_id must be a string"),
    "input outside the storage root": (json.dumps(_req("translate_video", {"input": "../../etc/passwd",
                                        "target_languages": ["ru"]})).encode(), -32602, "under the shared storage root"),
    "unknown language code": (json.dumps(_req("translate_text", {"texts": ["hi"], "target_language": "xx"})).encode(),
                              -32006, "'xx'"),
    "10,000 texts": (json.dumps(_req("translate_text", {"texts": ["a"] * 10_000, "target_language": "ru"})).encode(),
                     -32009, "too much text"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(RPC_CASES))
def test_bad_json_rpc_gets_an_error_with_the_envelope(rpc: Any, case: str) -> None:
    body, code, words = RPC_CASES[case]
    outcome = rpc(body)
    replies = outcome.reply if isinstance(outcome.reply, list) else [outcome.reply]
    assert replies and all(r["jsonrpc"] == "2.0" and "result" not in r for r in replies)
    error = replies[0]["error"]
    assert error["code"] == code and words in error["message"], error
    data = error["data"]
    assert data["status"] == "error" and data["message"] == error["message"] and data["error"]["code"]
    assert len(json.dumps(outcome.reply)) < 20_000  # the bad request is not echoed back
    if code in (-32700, -32600, -32601, -32602):
        assert outcome.poison is not None  # dead-lettered, never requeued
    # the handler is still fine: a good request after the bad one works
    ok = rpc(json.dumps(_req("translate_text", {"texts": ["hi"], "target_language": "ru"})).encode())
    assert ok.reply["result"]["translations"] == ["hi"]


# --------------------------------------------------------------------------- CLI


CLI_CASES = {
    "zero bytes": (["translate", "{zero_bytes}", "--to", "ru"], "empty"),
    "text renamed .mp4": (["translate", "{text_as_mp4}", "--to", "ru"], "not a readable media file"),
    "a playlist": (["transcribe", "{hls_local_file}"], "playlist"),
    "3 hours claimed": (["translate", "{claims_three_hours}", "--to", "ru"], "claims to last"),
    "unknown language": (["translate", "{good}", "--to", "xx"], "unknown language code 'xx'"),
    "unknown mode": (["translate", "{good}", "--to", "ru", "--mode", "karaoke"], "--mode must be dub or subtitles"),
    "missing input": (["translate", "/nonexistent/clip.mp4", "--to", "ru"], "not found"),
    "file URL": (["translate", "file:///etc/passwd", "--to", "ru"], "only http and https"),
    "metadata URL": (["translate", "http://169.254.169.254/latest/meta-data", "--to", "ru"], "169.254.169.254"),
    "malformed glossary": (
        ["translate", "{good}", "--to", "ru", "--glossary", "{glossary}"],
        "expected 'term = translation'",
    ),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_bad_input_is_one_error_line(media: dict[str, Path], tmp_path: Path, case: str) -> None:
    from typer.testing import CliRunner

    from videotranslator.cli import app

    glossary = tmp_path / "glossary.txt"
    glossary.write_text("hello = привет\nno separator here\n", encoding="utf-8")
    args, words = CLI_CASES[case]
    paths = {**{k: str(v) for k, v in media.items()}, "glossary": str(glossary)}
    argv = [a.format(**paths) if a.startswith("{") else a for a in args] + ["-o", str(tmp_path / "out")]
    result = CliRunner().invoke(app, argv)
    text = result.output
    assert result.exit_code != 0 and not isinstance(result.exception, (AssertionError, TypeError)), text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], text
    assert "Traceback" not in text and not (tmp_path / "out").exists()
