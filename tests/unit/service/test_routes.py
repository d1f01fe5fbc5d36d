"""The route table of `xp assign serve`: thirteen routes, each a named method of ``Handlers`` or
``SdkHandlers``."""

from __future__ import annotations

from starlette.routing import Route

from assignment.service.app import Service, routes

EXPECTED = {
    ("/v1/assign", "POST"),
    ("/v1/assign/batch", "POST"),
    ("/api/features/{client_key}", "GET"),
    ("/v1/events", "POST"),
    ("/v1/overrides", "POST"),
    ("/v1/overrides/{experiment_key}/{unit_id}", "DELETE"),
    ("/api/eval/{client_key}", "POST"),
    ("/sub/{client_key}", "GET"),
    ("/ofrep/v1/evaluate/flags/{key}", "POST"),
    ("/ofrep/v1/evaluate/flags", "POST"),
    ("/healthz", "GET"),
    ("/metrics", "GET"),
    ("/openapi.json", "GET"),
}


def test_the_routes_and_their_methods(service: Service) -> None:
    table = routes(service)
    assert all(isinstance(route, Route) for route in table)
    found = {(route.path, method) for route in table for method in route.methods or () if method != "HEAD"}
    assert found == EXPECTED


def test_api_routes_are_timed_by_their_name(service: Service) -> None:
    names = [route.name for route in routes(service)][:6]
    assert names == ["assign", "assign_batch", "sdk_features", "events", "put_override", "delete_override"]
    samples = {
        sample.labels["endpoint"]
        for metric in service.metrics.registry.collect()
        if metric.name == "xp_service_request_seconds"
        for sample in metric.samples
        if "endpoint" in sample.labels
    }
    assert set(names) <= samples
