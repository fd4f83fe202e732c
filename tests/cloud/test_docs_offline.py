"""The API docs page works without the internet: Swagger UI is served by the app itself."""

from fastapi.testclient import TestClient

from boucle.settings import ApiSettings, load_settings
from cloud.app import create_app


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
