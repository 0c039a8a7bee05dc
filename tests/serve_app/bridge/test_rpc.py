"""The bridge's JSON-RPC handling and method table, without a broker: a real JobService over SQLite in tmp and
fake model stages (the stages are not what these tests are about)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.schema import Segment, Transcript
from serve_app.bridge.methods import MethodContext, build_methods, resolve_input
from serve_app.bridge.rpc import DOMAIN_CODES, HandledMessage, RpcHandler, message_key, request_body
from serve_app.jobs import JobService, JobState, LocalStorage, SQLiteJobStore
from serve_app.jobs.public import JobPublic


class FakeModels:
    """Honours ``BridgeModels``: upper-cases texts, returns a one-segment transcript."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def transcribe(self, media_path: Path, language: str | None) -> Transcript:
        self.calls.append(("transcribe", str(media_path)))
        return Transcript(language or "en", 0.9, 2.0, (Segment(0.0, 2.0, " This is a test."),))

    def translate_texts(self, texts: list[str], source_language: str, target_language: str) -> list[str]:
        self.calls.append(("translate", source_language, target_language))
        return [t.upper() for t in texts]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "shared"
    (root / "inputs").mkdir(parents=True)
    (root / "inputs" / "clip.mp4").write_bytes(b"not really a video; submit only checks that it exists")
    return root


@pytest.fixture
def service(tmp_path: Path, root: Path) -> Iterator[JobService]:
    store = SQLiteJobStore(tmp_path / "jobs.db")
    yield JobService(store, LocalStorage(root), max_queued_jobs=3)
    store.close()


@pytest.fixture
def handler(service: JobService, root: Path) -> RpcHandler:
    ctx = MethodContext(service=service, models=FakeModels(), storage_root=root, max_text_items=4)
    return RpcHandler(build_methods(ctx), max_batch_size=3)


def call(
    handler: RpcHandler, body: bytes | str | Any, key: str = "amqp:m1", owner: str | None = None
) -> HandledMessage:
    raw = body if isinstance(body, bytes) else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
    return asyncio.run(handler.handle(raw, key=key, owner=owner))


def req(method: str, params: Any, id_: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params, "id": id_}


def video(**extra: Any) -> dict[str, Any]:
    return req("translate_video", {"input": "inputs/clip.mp4", "target_languages": ["es"], "mode": "subtitles", **extra})


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("{not json", -32700),
        ({"method": "get_job", "id": 1}, -32600),  # no "jsonrpc": "2.0"
        ({"jsonrpc": "2.0", "method": 5, "id": 1}, -32600),
        ({"jsonrpc": "2.0", "method": "get_job", "params": "x", "id": 1}, -32600),
        ([], -32600),  # an empty batch
        ([req("get_job", ["a"], i) for i in range(4)], -32600),  # over max_batch_size
        (req("no_such_method", {}), -32601),
        (req("get_job", {"job_id": "a", "extra": 1}), -32602),  # unknown param
        (req("translate_text", {"texts": ["hi"]}), -32602),  # missing param
        (req("translate_text", {"texts": [1], "target_language": "es"}), -32602),  # wrong type
        (video(input="../../etc/passwd"), -32602),  # escapes the storage root
        (video(input="/etc/passwd"), -32602),
        (video(mode="karaoke"), -32602),
        (video(target_languages=[]), -32602),
    ],
)
def test_each_protocol_error_is_poison_with_a_reply(handler: RpcHandler, body: Any, code: int) -> None:
    outcome = call(handler, body)
    assert outcome.poison is not None and outcome.poison.startswith(str(code))
    assert outcome.poison_code == code
    reply = outcome.reply[0] if isinstance(outcome.reply, list) else outcome.reply
    assert reply is not None and reply["error"]["code"] == code and reply["jsonrpc"] == "2.0"
    assert outcome.queue_full is None and not outcome.watches


@pytest.mark.parametrize(
    "where",
    [
        "../outside.mp4",  # escapes the storage root
        "inputs/../../outside.mp4",
        "inputs/../uploads/{file_id}/{file_id}.mp4",  # another tenant's upload, by path
        "uploads/{file_id}/{file_id}.mp4",
        "{root}/uploads/{file_id}/{file_id}.mp4",
        "jobs/{job_id}/out/talk.es.srt",  # another job's output
        "inputs/link-to-uploads/{file_id}.mp4",  # a symlink out of the input folder
        "inputs",
        "jobs.db",
        "",
    ],
)
def test_paths_outside_the_input_folder_are_refused_and_make_no_job(
    handler: RpcHandler, service: JobService, root: Path, where: str
) -> None:
    file_id, job_id = "a" * 32, "b" * 32
    upload = root / "uploads" / file_id
    upload.mkdir(parents=True, exist_ok=True)
    (upload / f"{file_id}.mp4").write_bytes(b"someone else's video")
    (root / "jobs" / job_id / "out").mkdir(parents=True, exist_ok=True)
    (root / "jobs" / job_id / "out" / "talk.es.srt").write_text("1")
    link = root / "inputs" / "link-to-uploads"
    if not link.exists():
        link.symlink_to(upload)
    outcome = call(handler, video(input=where.format(file_id=file_id, job_id=job_id, root=root)))
    reply = outcome.reply
    assert isinstance(reply, dict) and reply["error"]["code"] == -32602, reply
    assert reply["error"]["data"]["error"]["code"] == "input_not_allowed"
    assert str(root) not in json.dumps(reply)
    assert service.list() == []  # no job


def test_the_input_folder_may_not_hold_the_apps_folders(root: Path) -> None:
    for input_dir in ("", ".", "uploads", "jobs/x", "..", "/tmp"):
        with pytest.raises(Exception, match="input must be a file_id"):
            resolve_input("inputs/clip.mp4", root, input_dir)


def test_domain_errors_carry_the_envelope_and_are_not_poison(handler: RpcHandler) -> None:
    outcome = call(handler, req("get_job", {"job_id": "f" * 32}, "abc"))
    assert outcome.poison is None
    assert outcome.reply == {
        "jsonrpc": "2.0",
        "id": "abc",
        "error": {
            "code": DOMAIN_CODES["job_not_found"],
            "message": f"no job with id {'f' * 32}",
            "data": {
                "status": "error",
                "message": f"no job with id {'f' * 32}",
                "error": {"code": "job_not_found", "detail": None},
            },
        },
    }
    assert -32099 <= min(DOMAIN_CODES.values()) and max(DOMAIN_CODES.values()) <= -32000
    unknown = call(handler, req("translate_text", {"texts": ["a"], "target_language": "xx"})).reply
    assert isinstance(unknown, dict) and unknown["error"]["code"] == DOMAIN_CODES["unknown_language"]
    missing = call(handler, video(input="inputs/none.mp4")).reply
    assert isinstance(missing, dict) and missing["error"]["code"] == DOMAIN_CODES["input_not_found"]


def test_translate_text_positional_and_named(handler: RpcHandler) -> None:
    named = call(handler, req("translate_text", {"texts": ["hi", "there"], "target_language": "es"}))
    assert named.reply == {
        "jsonrpc": "2.0",
        "id": 1,
        "result": {"translations": ["HI", "THERE"], "source_language": "en", "target_language": "es"},
    }
    positional = call(handler, req("translate_text", [["x"], "ru", "de"], 2)).reply
    assert isinstance(positional, dict) and positional["result"]["source_language"] == "de"
    too_many = call(handler, req("translate_text", {"texts": list("abcde"), "target_language": "es"})).reply
    assert isinstance(too_many, dict) and too_many["error"]["code"] == DOMAIN_CODES["bad_request"]


def test_notification_gets_no_reply(handler: RpcHandler) -> None:
    outcome = call(
        handler, {"jsonrpc": "2.0", "method": "translate_text", "params": {"texts": ["a"], "target_language": "es"}}
    )
    assert outcome.reply is None and outcome.poison is None


def test_batch_keeps_order_and_flags_poison(handler: RpcHandler) -> None:
    outcome = call(
        handler,
        [
            req("translate_text", {"texts": ["a"], "target_language": "es"}, 1),
            {"jsonrpc": "2.0", "method": "translate_text", "params": {"texts": ["b"], "target_language": "es"}},
            req("nope", {}, 3),
        ],
    )
    assert isinstance(outcome.reply, list) and [r["id"] for r in outcome.reply] == [1, 3]
    assert outcome.reply[0]["result"]["translations"] == ["A"]
    assert outcome.poison is not None and outcome.poison.startswith("-32601")


def test_translate_video_is_idempotent_per_message_key(handler: RpcHandler, service: JobService) -> None:
    first = call(handler, video(wait=True), key="amqp:same")
    again = call(handler, video(), key="amqp:same")  # a redelivery: the same job, whatever the params say
    assert isinstance(first.reply, dict) and isinstance(again.reply, dict)
    job_id = first.reply["result"]["job_id"]
    assert first.reply["result"] == {"job_id": job_id, "state": "queued"}
    assert again.reply["result"]["job_id"] == job_id
    assert [(w.job_id, w.request_id, w.wait) for w in first.watches] == [(job_id, 1, True)]
    assert len(service.list()) == 1
    batch = call(handler, [video(), video()], key="amqp:batch")  # batch items are separate jobs
    assert isinstance(batch.reply, list) and len({r["result"]["job_id"] for r in batch.reply}) == 2
    assert len(service.list()) == 3
    view = call(handler, req("get_job", [job_id])).reply
    assert isinstance(view, dict) and view["result"]["state"] == "queued" and view["result"]["job_id"] == job_id
    cancelled = call(handler, req("cancel_job", {"job_id": job_id})).reply
    assert isinstance(cancelled, dict) and cancelled["result"]["state"] == JobState.CANCELLED.value


# What the bridge's job replies carried before they became the HTTP API's public view (clients rely on these).
BRIDGE_JOB_FIELDS = {"job_id", "state", "stage", "progress", "eta_s", "error", "outputs", "output_dir", "mode",
                     "target_languages", "cancel_requested", "created_at", "updated_at", "finished_at"}  # fmt: skip


def test_job_replies_are_the_http_public_view_plus_a_relative_output_dir(
    handler: RpcHandler, service: JobService, root: Path
) -> None:
    reply = call(handler, video(), key="amqp:view").reply
    assert isinstance(reply, dict)
    job_id = reply["result"]["job_id"]
    service.store.update(job_id, progress=0.123456, error={"code": "x", "message": "y"})
    view = call(handler, req("get_job", [job_id])).reply
    assert isinstance(view, dict)
    expected = JobPublic.from_record(service.get(job_id)).model_dump(mode="json")
    assert view["result"] == {**expected, "output_dir": f"jobs/{job_id}/out"}  # relative: no server path
    assert service.storage.job_dir(job_id) / "out" == root / view["result"]["output_dir"]
    assert BRIDGE_JOB_FIELDS <= set(view["result"])
    assert view["result"]["progress"] == 0.1235 and view["result"]["error"] == {"code": "x", "message": "y"}


def test_full_job_queue_is_backpressure_not_poison(handler: RpcHandler, service: JobService) -> None:
    for i in range(3):
        call(handler, video(), key=f"amqp:fill{i}")
    outcome = call(handler, video(), key="amqp:overflow")
    assert outcome.queue_full is not None and outcome.poison is None
    assert isinstance(outcome.reply, dict) and outcome.reply["error"]["code"] == DOMAIN_CODES["queue_full"]
    assert call(handler, video(), key="amqp:fill0").queue_full is None  # a known key is not new work


def test_transcribe_and_file_ids(handler: RpcHandler) -> None:
    reply = call(handler, req("transcribe", {"input": "inputs/clip.mp4", "language": "en"})).reply
    assert isinstance(reply, dict)
    assert reply["result"]["text"] == "This is a test." and reply["result"]["language"] == "en"
    unknown_file = call(handler, req("transcribe", {"input": "0" * 32})).reply
    assert isinstance(unknown_file, dict) and unknown_file["error"]["code"] == DOMAIN_CODES["file_not_found"]


def test_resolve_input(root: Path) -> None:
    assert resolve_input("a" * 32, root) == ("a" * 32, "a" * 32)
    assert resolve_input("inputs/clip.mp4", root) == (str((root / "inputs/clip.mp4").resolve()), None)
    assert resolve_input(str(root / "inputs/clip.mp4"), root)[1] is None
    assert resolve_input("shared/clip.mp4", root, "shared")[1] is None


def test_message_key_and_request_body() -> None:
    assert message_key("abc", b"x") == "amqp:abc"
    assert message_key(None, b"x") == message_key("", b"x") != message_key(None, b"y")
    assert json.loads(request_body("get_job", ["a"])) == {"jsonrpc": "2.0", "method": "get_job", "params": ["a"]}


def test_translate_video_takes_a_glossary(handler: RpcHandler, service: JobService) -> None:
    reply = call(handler, video(glossary={"test": "prueba"}), key="amqp:g1").reply
    assert isinstance(reply, dict), reply
    assert service.get(reply["result"]["job_id"]).request.glossary == {"test": "prueba"}
    lines = call(handler, video(glossary="test = prueba"), key="amqp:g2").reply
    assert isinstance(lines, dict) and service.get(lines["result"]["job_id"]).request.glossary == {"test": "prueba"}
    for bad in ({"test": 1}, ["test"], "no separator here"):
        outcome = call(handler, video(glossary=bad), key="amqp:g3")
        assert isinstance(outcome.reply, dict) and outcome.reply["error"]["code"] == -32602, (bad, outcome.reply)
    assert len(service.list()) == 2


def test_domain_errors_name_no_server_path(root: Path) -> None:
    """A stage error that names a server path (ffmpeg, a model file): the reply keeps the file name only."""
    from pipelines.errors import InputNotFound
    from serve_app.bridge.rpc import domain_error

    exc = InputNotFound(f"input file not found: {root}/inputs/missing.mp4", detail=f"stat {root}/inputs/missing.mp4")
    error = domain_error(exc)
    assert error.code == DOMAIN_CODES["input_not_found"]
    assert error.message == "input file not found: missing.mp4"
    assert str(root) not in json.dumps(error.data)
