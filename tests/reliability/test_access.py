"""Access control, round two (issue 12): the Host allow-list against DNS rebinding (item 11) and idempotency keys
private to their owner (item 12). Over HTTP, through the app's own wiring."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from serve_app.api.hosts import HostAllowList, host_name
from tests.reliability.test_security import KEY_A, KEY_B, A, B, envelope, make_client

TRANSLATE = {"texts": ["hi"], "source_language": "en", "target_language": "ru"}


@pytest.fixture
def keyless(tmp_path: Path, fakes: dict[str, Any]) -> Iterator[Any]:
    """The default: no API keys, loopback names only."""
    yield from make_client(tmp_path, fakes)


# --------------------------------------------------------------------------- item 11: DNS rebinding


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8000", "127.0.0.1.nip.io", "0.0.0.0:8000",
                                  "localhost.attacker.example", ""])  # fmt: skip
def test_a_forged_host_is_refused_on_every_route(keyless: Any, host: str) -> None:
    """A rebinding page's requests carry its own name in Host (and a matching Origin): nothing is served."""
    origin = f"http://{host}"
    for method, path in (("GET", "/"), ("GET", "/jobs"), ("GET", "/config"), ("GET", "/static/app.js"),
                         ("POST", "/v1/translate"), ("GET", "/openapi.json")):  # fmt: skip
        r = keyless.request(method, path, headers={"Host": host, "Origin": origin},
                            json=TRANSLATE if method == "POST" else None)  # fmt: skip
        body = envelope(r, 400, "invalid_host")
        assert "service.allowed_hosts" in body["message"]
        assert r.headers["x-content-type-options"] == "nosniff"  # still behind the security headers
    assert keyless.get("/healthz", headers={"Host": host}).status_code == 200  # probes come by IP


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST."])
def test_loopback_names_are_served_by_default(keyless: Any, host: str) -> None:
    assert keyless.get("/jobs", headers={"Host": host}).status_code == 200
    r = keyless.post("/v1/translate", json=TRANSLATE, headers={"Host": host, "Origin": f"http://{host}"})
    assert r.status_code == 200, r.text


def test_allowed_hosts_setting_names_what_is_served(tmp_path: Path, fakes: dict[str, Any]) -> None:
    for client in make_client(tmp_path, fakes, allowed_hosts="videos.example.com,*.corp.example"):
        for host in ("videos.example.com", "videos.example.com:443", "a.corp.example"):
            assert client.get("/jobs", headers={"Host": host}).status_code == 200, host
        for host in ("localhost", "corp.example", "evil.videos.example.com"):
            envelope(client.get("/jobs", headers={"Host": host}), 400, "invalid_host")


def test_csrf_does_not_trust_an_origin_that_matches_a_forged_host() -> None:
    """The CSRF rule alone (whatever runs before it): an Origin equal to Host passes only for an allowed name."""
    from serve_app.api.csrf import check
    from serve_app.api.errors import CSRFFailed

    def scope(host: str, origin: str) -> dict[str, Any]:
        return {"type": "http", "method": "POST", "headers": [(b"host", host.encode()), (b"origin", origin.encode())]}

    allowed = HostAllowList(["localhost", "127.0.0.1", "::1"])
    assert check(scope("127.0.0.1:8000", "http://127.0.0.1:8000"), allowed) is None
    with pytest.raises(CSRFFailed, match="cross-site"):
        check(scope("attacker.example:8000", "http://attacker.example:8000"), allowed)


def test_host_names_are_parsed_like_browsers_send_them() -> None:
    assert [host_name(h) for h in ("Example.COM:80", "[::1]:8000", "::1", "localhost.", "", None)] == [
        "example.com", "::1", "::1", "localhost", None, None]  # fmt: skip
    allowed = HostAllowList(["*.example.com", "[::1]"])
    assert allowed.allows("a.example.com") and allowed.allows("::1")
    assert not allowed.allows("example.com") and not allowed.allows("badexample.com") and not allowed.allows(None)
    assert HostAllowList(["*"]).allows("anything") and not HostAllowList([]).allows("localhost")


# --------------------------------------------------------------------------- item 12: idempotency keys


def _upload(client: Any, path: Path, headers: dict[str, str]) -> str:
    with open(path, "rb") as fh:
        r = client.post("/files/upload", files={"file": ("clip.mp4", fh)}, headers=headers)
    assert r.status_code == 201, r.text
    return str(r.json()["data"]["file_id"])


def test_idempotency_keys_are_private_to_their_api_key(tmp_path: Path, fakes: dict[str, Any],
                                                       media: dict[str, Path]) -> None:  # fmt: skip
    """Bob sending Alice's Idempotency-Key gets a job of his own: he cannot tell the key was used (no 400, no
    Alice job) and cannot squat it (Alice's retry still finds hers)."""
    for client in make_client(tmp_path, fakes, api_keys=[KEY_A, KEY_B]):
        body = {"target_languages": ["ru"], "mode": "subtitles"}
        bob_first = client.post("/jobs", json={**body, "file_id": _upload(client, media["good"], B)},
                                headers={**B, "Idempotency-Key": "order-42"})  # fmt: skip
        assert bob_first.status_code == 202, bob_first.text
        alice_file = _upload(client, media["good"], A)
        alice = client.post("/jobs", json={**body, "file_id": alice_file}, headers={**A, "Idempotency-Key": "order-42"})
        assert alice.status_code == 202, alice.text
        alice_id = alice.json()["data"]["job_id"]
        assert alice_id != bob_first.json()["data"]["job_id"]
        again = client.post("/jobs", json={**body, "file_id": alice_file}, headers={**A, "Idempotency-Key": "order-42"})
        assert again.status_code == 202 and again.json()["data"]["job_id"] == alice_id
        bob_again = client.post(
            "/jobs", json={**body, "file_id": alice_file}, headers={**B, "Idempotency-Key": "order-42"}
        )
        assert bob_again.json()["data"]["job_id"] == bob_first.json()["data"]["job_id"]  # his own, not Alice's
        assert [j["job_id"] for j in client.get("/jobs", headers=A).json()["data"]["jobs"]] == [alice_id]
