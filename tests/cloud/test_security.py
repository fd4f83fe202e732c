"""Keys and scopes on every endpoint family, rate limit, size limits, CORS."""

from __future__ import annotations

import httpx
import pytest
from fastapi import Request
from fastapi.testclient import TestClient

from boucle.settings import SettingsError
from cloud.ratelimit import TokenBuckets
from cloud.serve import proxy_options
from tests.cloud.conftest import ADMIN, ECULLY, PERIOD, ZIM_FABLAB, make_app

P = f"from={PERIOD['from']}&to={PERIOD['to']}"
# one URL per endpoint family, for territory "{t}" or site "{s}"
TERRITORY_URLS = [
    "/v1/territories/{t}",
    "/v1/sites?territory={t}",
    "/v1/devices?territory={t}",
    "/v1/territories/{t}/indicators?ids=energy.consumed&" + P,
    "/v1/territories/{t}/indicators?ids=energy.consumed&format=csv&" + P,
    "/v1/compare?territories=ecully,{t}&ids=energy.consumed&" + P,
    "/v1/compare?territories=ecully,{t}&ids=energy.consumed&format=csv&" + P,
    "/v1/territories/{t}/indicators/energy.consumed/series?step=1d&" + P,
    "/v1/territories/{t}/indicators/energy.consumed/series?step=1d&format=csv&" + P,
    "/v1/territories/{t}/symbiosis?" + P,
    "/v1/territories/{t}/pooling?" + P,
    "/v1/fiware/territories/{t}/key-performance-indicators?ids=waste.per_capita&" + P,
    "/v1/fiware/territories/{t}/waste-containers?" + P,
    "/v1/territories/{t}/rounds?day=2026-03-30",
    "/v1/territories/{t}/rounds?day=2026-03-30&format=csv",
    "/v1/alerts?territory={t}",
    "/v1/exchanges?territory={t}",
]
SITE_URLS = [
    "/v1/sites/{s}",
    "/v1/devices?site={s}",
    "/v1/sites/{s}/indicators?ids=energy.consumed&" + P,
    "/v1/sites/{s}/indicators?ids=energy.consumed&format=csv&" + P,
    "/v1/sites/{s}/indicators/energy.consumed/series?step=1d&" + P,
    "/v1/fiware/sites/{s}/key-performance-indicators?ids=energy.consumed&" + P,
    "/v1/fiware/sites/{s}/waste-containers?" + P,
]


def get(client, url, key):
    return client.get(url, headers={"X-API-Key": key})


@pytest.mark.parametrize("url", TERRITORY_URLS)
def test_a_territory_key_sees_its_territory_and_gets_404_for_another(client, url):
    assert get(client, url.format(t="ecully"), ECULLY).status_code == 200
    other = get(client, url.format(t="zi-meyzieu"), ECULLY)
    assert other.status_code == 404, other.text
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["status"] == 404
    # a territory that does not exist looks the same as one the key may not see
    missing = get(client, url.format(t="atlantis"), ECULLY)
    assert missing.status_code == 404
    assert missing.json()["title"] == other.json()["title"]
    assert get(client, url.format(t="zi-meyzieu"), ADMIN).status_code == 200


@pytest.mark.parametrize("url", SITE_URLS)
def test_site_urls_follow_the_key_scope(client, url):
    assert get(client, url.format(s="ecully-fablab"), ECULLY).status_code == 200  # a site of its territory
    assert get(client, url.format(s="zim-fablab"), ECULLY).status_code == 404
    assert get(client, url.format(s="zim-fablab"), ZIM_FABLAB).status_code == 200  # the site key, its site
    assert get(client, url.format(s="zim-metal"), ZIM_FABLAB).status_code == 404  # ...and not its neighbour
    assert get(client, url.format(s="zim-metal"), ADMIN).status_code == 200


@pytest.mark.parametrize("url", TERRITORY_URLS)
def test_a_site_key_gets_404_for_territory_wide_answers(client, url):
    assert get(client, url.format(t="cc-monts-lyonnais"), ZIM_FABLAB).status_code == 404


def test_lists_show_only_what_the_key_may_see(client):
    territories = {t["id"] for t in get(client, "/v1/territories", ECULLY).json()}
    assert territories == {"ecully"}
    assert len(get(client, "/v1/territories", ADMIN).json()) == 3
    sites = get(client, "/v1/sites", ZIM_FABLAB).json()
    assert [s["id"] for s in sites] == ["zim-fablab"]
    devices = get(client, "/v1/devices", ZIM_FABLAB).json()
    assert devices and {d["site"] for d in devices} == {"zim-fablab"}
    assert {s["territory"] for s in get(client, "/v1/sites", ECULLY).json()} == {"ecully"}


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "bk_wrong"}, {"Authorization": "Bearer bk_wrong"}])
def test_missing_or_unknown_key_is_401_problem(client, headers):
    r = client.get("/v1/territories", headers=headers)
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == 401 and body["title"] and body["instance"] == "/v1/territories"
    assert "WWW-Authenticate" in r.headers


def test_bearer_token_is_accepted(client):
    r = client.get("/v1/territories", headers={"Authorization": f"Bearer {ECULLY}"})
    assert r.status_code == 200 and [t["id"] for t in r.json()] == ["ecully"]


def test_only_an_admin_may_match_needs_outside_the_territory(client):
    url = f"/v1/territories/ecully/symbiosis?everywhere=true&{P}"
    assert get(client, url, ECULLY).status_code == 403
    assert get(client, url, ADMIN).status_code == 200


def test_rate_limit_answers_429_with_retry_after_per_key(simulated_db):
    # a refill of one token per 1000 s: the fourth request in a row is refused
    with TestClient(make_app(simulated_db, rate_limit_per_s=0.001, rate_limit_burst=3)) as c:
        codes = [get(c, "/v1/territories", ECULLY).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = get(c, "/v1/territories", ECULLY)
        assert r.status_code == 429
        assert r.headers["content-type"] == "application/problem+json"
        assert int(r.headers["Retry-After"]) >= 1
        assert r.json()["status"] == 429
        # another key has its own bucket; the dashboard page is not rate-limited
        assert get(c, "/v1/territories", ADMIN).status_code == 200
        assert all(c.get("/").status_code == 200 for _ in range(5))


def test_unknown_keys_are_limited_per_client_address_not_per_key(simulated_db):
    # rotating made-up keys used to get a fresh bucket each
    with TestClient(make_app(simulated_db, rate_limit_per_s=0.001, rate_limit_burst=3)) as c:
        codes = [get(c, "/v1/territories", f"bk_made-up-{i}").status_code for i in range(5)]
        assert codes == [401, 401, 401, 429, 429]
        assert get(c, "/v1/territories", "").status_code == 429  # no key: the same address bucket
        assert get(c, "/v1/territories", ECULLY).status_code == 200  # a real key has its own


def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(served):
    fake_clients = [{"X-API-Key": f"bk_made-up-{i}", "X-Forwarded-For": f"203.0.113.{i}"} for i in range(4)]
    # by default (uvicorn's own default trusts loopback) the header is ignored: one address
    api = served(rate_limit_per_s=0.001, rate_limit_burst=2)
    codes = [httpx.get(f"{api.url}/v1/territories", headers=h).status_code for h in fake_clients]
    assert codes == [401, 401, 429, 429]
    # behind a configured proxy, the address it forwards is the client
    proxied = served(rate_limit_per_s=0.001, rate_limit_burst=2, trusted_proxies="127.0.0.1")
    codes = [httpx.get(f"{proxied.url}/v1/territories", headers=h).status_code for h in fake_clients]
    assert codes == [401, 401, 401, 401]
    again = [httpx.get(f"{proxied.url}/v1/territories", headers=fake_clients[0]).status_code for _ in range(2)]
    assert again == [401, 429]  # ...with its own bucket


def test_trusted_proxies_must_be_addresses_or_networks():
    assert proxy_options("") == {"proxy_headers": False, "forwarded_allow_ips": None}
    assert proxy_options("10.0.0.0/8, ::1")["forwarded_allow_ips"] == "10.0.0.0/8,::1"
    with pytest.raises(SettingsError, match="BOUCLE_TRUSTED_PROXIES: 'proxy.lan'"):
        proxy_options("proxy.lan")


def test_rate_limit_can_be_switched_off(simulated_db):
    with TestClient(make_app(simulated_db, rate_limit_per_s=0.0, rate_limit_burst=1)) as c:
        assert {get(c, "/v1/territories", ECULLY).status_code for _ in range(10)} == {200}


def test_token_bucket_refills_at_its_rate():
    now = [0.0]
    buckets = TokenBuckets(per_s=2.0, burst=2, clock=lambda: now[0])
    assert buckets.take("k") == 0.0 and buckets.take("k") == 0.0
    assert buckets.take("k") == pytest.approx(0.5)
    now[0] = 0.5
    assert buckets.take("k") == 0.0
    assert buckets.take("other") == 0.0
    now[0] = 100.0  # refills to the burst size, never beyond
    assert [buckets.take("k") for _ in range(3)][-1] > 0


def test_bucket_memory_is_bounded():
    buckets = TokenBuckets(per_s=1.0, burst=1, clock=lambda: 0.0, max_callers=10)
    for i in range(100):
        buckets.take(f"caller-{i}")
    assert len(buckets._buckets) <= 10


def test_long_query_string_is_414_and_large_body_is_413(simulated_db):
    with TestClient(make_app(simulated_db, max_query_bytes=300, max_body_bytes=100)) as c:
        r = get(c, "/v1/territories?x=" + "a" * 400, ECULLY)
        assert r.status_code == 414 and r.headers["content-type"] == "application/problem+json"
        r = c.post("/v1/territories", content=b"x" * 500, headers={"X-API-Key": ECULLY})
        assert r.status_code == 413 and r.json()["status"] == 413
        assert get(c, "/v1/territories?x=short", ECULLY).status_code == 200


def test_cors_allows_only_the_configured_origins(simulated_db):
    with TestClient(make_app(simulated_db, cors_origins="https://observatoire.example.fr")) as c:
        ok = c.options("/v1/territories", headers={"Origin": "https://observatoire.example.fr",
                                                   "Access-Control-Request-Method": "GET",
                                                   "Access-Control-Request-Headers": "x-api-key"})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "https://observatoire.example.fr"
        assert "x-api-key" in ok.headers["access-control-allow-headers"].lower()
        r = get(c, "/v1/territories", ECULLY)
        assert "access-control-allow-origin" not in r.headers
        r = c.get("/v1/territories", headers={"X-API-Key": ECULLY, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
    with TestClient(make_app(simulated_db)) as c:  # default: same origin only
        r = c.get("/v1/territories", headers={"X-API-Key": ECULLY, "Origin": "https://observatoire.example.fr"})
        assert "access-control-allow-origin" not in r.headers


def test_a_streamed_body_is_bounded_while_it_arrives(simulated_db):
    app = make_app(simulated_db, max_body_bytes=100)

    @app.post("/echo")  # no Boucle endpoint reads a body yet: a route that does, for this test
    async def echo(request: Request) -> dict:
        return {"bytes": len(await request.body())}

    with TestClient(app) as c:
        assert c.post("/echo", content=iter([b"x" * 40, b"x" * 40])).json() == {"bytes": 80}
        r = c.post("/echo", content=iter([b"x" * 60, b"x" * 60]))  # chunked: no Content-Length
        assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["title"] == "Request body too large" and "100 bytes" in r.json()["detail"]
