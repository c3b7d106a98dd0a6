"""The API's browsable pages load nothing from another host: only the vendored assets, which exist."""
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

VENDOR_DIR = Path(__file__).resolve().parents[2] / "backend" / "web" / "static" / "vendor"
VENDOR_URL = "/static/vendor/"
STATIC_DIR = VENDOR_DIR.parent
# The one asset of the platform's own (not vendored) a docs page names.
OWN_ASSETS = {"/static/favicon.svg"}


class _References(HTMLParser):
    """Every src= and href= of a page, in order."""

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        self.urls.extend(value for name, value in attrs if name in ("src", "href") and value)


def _references(html):
    parser = _References()
    parser.feed(html)
    parser.close()
    return parser.urls


def _doc_pages(app):
    """The pages spectree serves under /api/docs/ (each /api/docs/<name>/), from the URL map."""
    return sorted(rule.rule for rule in app.url_map.iter_rules()
                  if rule.rule.startswith("/api/docs/") and rule.rule.endswith("/"))


def test_the_docs_pages_are_swagger_and_redoc(app):
    # Scalar is not vendored, so spectree has no page for it (nor a CDN-loading one for anything else).
    assert _doc_pages(app) == ["/api/docs/redoc/", "/api/docs/swagger/"]


@pytest.mark.parametrize("page", ["/api/docs/swagger/", "/api/docs/redoc/"])
def test_a_docs_page_loads_only_vendored_files_that_exist(client, page):
    response = client.get(page)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "/api/openapi.json" in html

    # No other host anywhere in the page, not even in its script; every src= and href= is a vendored file
    # of this host (which also rules out a protocol-relative //host/...).
    assert "http://" not in html and "https://" not in html, html
    urls = _references(html)
    assert urls, "the page loads no asset at all"
    for url in urls:
        if url in OWN_ASSETS:
            assert (STATIC_DIR / url.removeprefix("/static/")).is_file(), url
            continue
        assert url.startswith(VENDOR_URL), url
        path = (VENDOR_DIR / url.removeprefix(VENDOR_URL)).resolve()
        assert path.parent == VENDOR_DIR and path.is_file(), f"{url}: no {path}"


def test_the_vendored_stylesheets_import_nothing_from_another_host():
    for css in VENDOR_DIR.glob("*.css"):
        text = css.read_text(encoding="utf-8")
        assert "@import" not in text, css.name
        for target in re.findall(r"url\(\s*['\"]?([^'\")]*)", text):
            assert target.startswith(("data:", "#")), f"{css.name}: url({target})"


def test_every_vendored_file_is_listed_in_the_vendor_readme():
    readme = (VENDOR_DIR / "README.md").read_text(encoding="utf-8")
    files = [path.name for path in VENDOR_DIR.iterdir() if path.name != "README.md"]
    assert len(files) >= 10
    assert [name for name in files if f"`{name}`" not in readme] == []
