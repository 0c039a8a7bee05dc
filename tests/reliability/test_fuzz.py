"""Schemathesis against ``/openapi.json`` of ``get_application``: every operation, positive and negative
generated requests, deterministic (Hypothesis ``derandomize``: the same cases on every run) and bounded.

The model stages are the fast fakes of ``conftest.py`` (``ListeningASR``, ``FakeTranslator``, ``FakeTTS``)
behind the real deployment classes, so the fuzzing exercises HTTP handling, validation, storage, the job store
and ffmpeg/ffprobe, not an LLM. Checks: no 5xx (``not_a_server_error``), every documented response matches its
schema (``response_schema_conformance``: 2xx bodies, and the error envelope documented as 4XX/5XX) and every
status is documented (``status_code_conformance``). docs/RELIABILITY.md ("Fuzzing") has the figures.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis  # a dev dependency (pyproject: .[dev])
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.reliability.conftest import FakeTranslator, FakeTTS, ListeningASR, make_services, make_settings

pytestmark = pytest.mark.slow

EXAMPLES_PER_MODE = 25  # x (21 operations + 11 with a negative mode), minus operations with few inputs
MIN_CASES = 500
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from serve_app.api.main import get_application

    fakes = {"asr": ListeningASR(), "translator": FakeTranslator(), "tts": FakeTTS()}
    # schemathesis's ASGI transport calls the app as http://testserver: the one host this app answers
    settings = make_settings(tmp_path_factory.mktemp("fuzz") / "var", allowed_hosts=["testserver"])
    services = make_services(settings, fakes)
    app = get_application(services=services)
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    services.jobs.store.close()


def _operations() -> list[str]:
    from configs.settings import Settings
    from serve_app.api.main import get_application

    root = Path("/nonexistent-vt-fuzz")  # only the schema is read: nothing is written
    app = get_application(Settings(_env_file=None, storage={"root": str(root)},  # type: ignore[call-arg]
                                   service={"job_store_url": "sqlite:///:memory:"}))  # fmt: skip
    cases = []
    for path, item in app.openapi()["paths"].items():
        for method, spec in item.items():
            # only a body, a query/header parameter or a typed path parameter has a negative case to generate
            # (any non-empty string is a valid job_id in the schema; the service answers 404 for it)
            typed = [p for p in spec.get("parameters", []) if p["in"] != "path" or p["schema"].get("type") != "string"]
            modes = ["positive", "negative"] if typed or spec.get("requestBody") else ["positive"]
            cases += [(f"{method.upper()} {path}", mode) for mode in modes]
    return cases


CASES = _operations()
OPERATIONS = sorted({operation for operation, _ in CASES})


@pytest.mark.parametrize(("operation", "mode"), CASES)
def test_fuzz_operation(api_schema: Any, operation: str, mode: str) -> None:
    from schemathesis import GenerationMode

    method, path = operation.split(" ", 1)
    op = api_schema[path][method]
    strategy = op.as_strategy(generation_mode=GenerationMode(mode))

    @settings(max_examples=EXAMPLES_PER_MODE, derandomize=True, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=strategy)
    def run(case: Any) -> None:
        calls.append(case)
        response = case.call()
        case.validate_response(response, checks=CHECKS)

    calls: list[Any] = []
    run()
    assert calls, f"no case was generated for {operation} ({mode})"
    print(f"\nfuzzing {operation} ({mode}): {len(calls)} cases at {time.strftime('%Y-%m-%d')}")


def test_the_cases_cover_every_operation_with_enough_budget(api_schema: Any) -> None:
    """Self-contained (it reads no other test's results, so ``-k`` selections pass): every operation of the
    live schema is a parametrised case, and the budget reaches MIN_CASES. Each case asserts its own count."""
    live = {f"{method.upper()} {path}" for path, item in api_schema.raw_schema["paths"].items() for method in item}
    assert live == set(OPERATIONS), live ^ set(OPERATIONS)
    assert len(CASES) * EXAMPLES_PER_MODE >= MIN_CASES
