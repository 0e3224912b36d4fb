"""Fuzz the API from its own OpenAPI spec (schemathesis): valid and invalid requests alike must never get a 5xx,
and every response must match the spec (status codes, content types, JSON schemas)."""
from __future__ import annotations

import pytest
import schemathesis
from schemathesis import GenerationMode

from search_index import real_home

pytestmark = pytest.mark.fuzz


@pytest.fixture(scope="module")
def api_schema():
    from web.app import create_app

    app = create_app({"home": real_home(), "rate_limit_per_minute": 0})
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=40,
                                    deterministic=True)
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_api_conforms_to_its_spec_and_never_5xx(case):
    response = case.call_and_validate()
    assert response.status_code < 500
