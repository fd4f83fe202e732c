"""Schemathesis against the app's own OpenAPI schema: no input may crash the API (no 5xx).

Bounded: a few examples per operation, on the two-day store, with an admin key and
with a territory key (whose out-of-scope answers must be 404, never an error).
"""

from __future__ import annotations

from collections import Counter

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.cloud.conftest import ADMIN, ECULLY, make_app


def test_no_server_errors(simulated_db):
    schema = schemathesis.openapi.from_asgi("/openapi.json", make_app(simulated_db, rate_limit_per_s=0.0))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 37  # 18, 9 of alerts, rounds and exchanges, 7 of the ledger and consent, 3 of drill-down
    statuses: Counter[int] = Counter()
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=6, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
        def no_server_error(case):
            for key in (ADMIN, ECULLY):
                response = case.call(headers={"X-API-Key": key})
                statuses[response.status_code] += 1
                assert response.status_code < 500, (case.method, case.formatted_path, case.query,
                                                    response.text[:500])
                if response.status_code >= 400:
                    assert response.headers["content-type"] == ["application/problem+json"]
                case.validate_response(response, checks=[not_a_server_error, response_schema_conformance,
                                                          content_type_conformance])

        no_server_error()
    # the run reached real answers and refusals alike, not only one kind
    assert statuses[200] >= 16 and statuses[404] and statuses[422], statuses


def test_the_schema_documents_every_endpoint_family(simulated_db):
    spec = make_app(simulated_db).openapi()
    paths = set(spec["paths"])
    for path in ("/v1/territories", "/v1/sites", "/v1/devices", "/v1/territories/{territory_id}/indicators",
                 "/v1/sites/{site_id}/indicators", "/v1/compare",
                 "/v1/territories/{territory_id}/indicators/{indicator_id}/series",
                 "/v1/territories/{territory_id}/symbiosis", "/v1/territories/{territory_id}/pooling",
                 "/v1/fiware/territories/{territory_id}/key-performance-indicators",
                 "/v1/fiware/territories/{territory_id}/waste-containers",
                 "/v1/fiware/territories/{territory_id}/water-consumption", "/v1/alerts",
                 "/v1/alerts/{alert_id}/acknowledge", "/v1/territories/{territory_id}/rounds", "/v1/exchanges",
                 "/v1/exchanges/{exchange_id}/status",
                                  "/v1/territories/{territory_id}/ranking", "/v1/territories/{territory_id}/device-health",
                 "/v1/sites/{site_id}/device-health"):
        assert path in paths, path
    # response models carry examples for the docs
    schemas = spec["components"]["schemas"]
    for name in ("IndicatorOut", "IndicatorSet", "Series", "Pooling", "Symbiosis", "TerritoryOut", "Problem"):
        assert schemas[name].get("examples"), name
