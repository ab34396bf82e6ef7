"""Schemathesis against the OpenAPI document: no generated request makes the API fail (no 5xx), and every
answer matches what the document promises. Bounded: a few examples per operation, so CI stays fast."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from starlette.testclient import TestClient

from webclient import INTAKE, api_token


@pytest.fixture
def api_headers(web_app):
    """A sales clerk's token, with one complaint past intake so generated ids meet real tasks and cases."""
    client = TestClient(web_app)
    headers = api_token(client, "li.zhou")
    started = client.post("/api/processes/customer_complaint/instances", json={}, headers=headers).json()
    client.post(f"/api/tasks/{started['tasks'][0]['id']}/complete", json={"data": INTAKE}, headers=headers)
    client.post("/api/processes/customer_complaint/instances", json={}, headers=headers)
    return headers


def test_generated_requests_never_fail_the_server(web_app, api_headers):
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", web_app)
    failures = {}
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=10, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def call(case):
            case.call_and_validate(headers=api_headers)

        try:
            call()
        except Exception as failure:  # noqa: BLE001 - collect every operation's failure, then report them all
            failures[operation.label] = f"{type(failure).__name__}: {failure}"
    assert len(list(schema.get_all_operations())) >= 11
    assert failures == {}
