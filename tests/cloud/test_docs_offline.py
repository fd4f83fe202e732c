"""The API docs page works without the internet: Swagger UI is served by the app itself."""

import re

import httpx
from fastapi.testclient import TestClient

from boucle.settings import ApiSettings, load_settings
from cloud.app import create_app
from tests.cloud.test_dashboard import chromium


def test_docs_page_and_its_assets_are_local(tmp_path):
    app = create_app(load_settings(ApiSettings, {}, store_url=f"sqlite:///{tmp_path / 'b.db'}"))
    client = TestClient(app)
    page = client.get("/docs")
    assert page.status_code == 200
    assert "http://" not in page.text.replace("http://testserver", "") and "https://" not in page.text
    for asset in ("/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"):
        assert asset in page.text
        assert client.get(asset).status_code == 200
    assert client.get("/openapi.json").json()["info"]["title"] == "Boucle API"


def test_the_schema_declares_the_key_so_the_docs_can_send_it(tmp_path, served):
    spec = served().url
    schema = httpx.get(f"{spec}/openapi.json").json()
    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey", "in": "header", "name": "X-API-Key",
        "description": "An API key (`boucle key` makes one; `boucle up` prints one)."}
    assert schema["components"]["securitySchemes"]["Bearer"]["scheme"] == "bearer"
    operations = [op for path, ops in schema["paths"].items() if path.startswith("/v1") for op in ops.values()]
    assert len(operations) == 37  # 18, 9 of alerts, rounds and exchanges, 7 of the ledger and consent, 3 of drill-down
    assert all(op["security"] == [{"ApiKey": []}, {"Bearer": []}] for op in operations)
    # Swagger UI draws its "Authorize" button from those schemes
    dom = chromium(tmp_path, f"{spec}/docs", "--dump-dom")
    assert re.search(r'<button class="btn authorize[^"]*"', dom), dom[-2000:]
