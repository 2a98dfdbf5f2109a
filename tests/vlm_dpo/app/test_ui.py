"""The served page, without a browser: it loads nothing from other hosts, listens where it is told, and the
command line's arguments parse as the CLI passes them."""

import re
import urllib.request
from html.parser import HTMLParser

import pytest
from transformers import HfArgumentParser

from data_prep.errors import UserError
from tests.helpers import free_port, port_open
from vlm_dpo.app import AppArguments, run


class Loads(HTMLParser):
    """What a browser fetches for the page: scripts, stylesheets, images, frames, media (not links or meta tags)."""

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "img", "iframe", "source", "video", "audio", "embed") and attrs.get("src"):
            self.urls.append(attrs["src"])
        if tag == "link" and attrs.get("href") and attrs.get("rel") in ("stylesheet", "preload", "modulepreload",
                                                                          "icon", "manifest", "preconnect"):
            self.urls.append(attrs["href"])


def css_loads(css: str) -> list[str]:
    """``url(...)`` and ``@import`` targets of a stylesheet, data: URIs left out."""
    urls = re.findall(r"""url\(\s*['"]?([^'")]+)""", css) + re.findall(r"""@import\s+['"]([^'"]+)""", css)
    return [url for url in urls if not url.startswith("data:")]


def other_hosts(urls: list[str], port: int) -> list[str]:
    return [url for url in urls if re.match(r"(https?:)?//", url) and not re.match(
        rf"(https?:)?//(127\.0\.0\.1|localhost):{port}(/|$)", url)]


def test_arguments_parse_as_the_cli_passes_them():
    (args,) = HfArgumentParser(AppArguments).parse_args_into_dataclasses(args=["--adapter", "outputs/tiny"])
    assert (args.adapter, args.port, args.host, args.model_name_or_path) == ("outputs/tiny", 7860, "127.0.0.1", None)
    (args,) = HfArgumentParser(AppArguments).parse_args_into_dataclasses(
        args=["--adapter", "x", "--port", "9000", "--host", "0.0.0.0", "--max_new_tokens", "16"])
    assert (args.port, args.host, args.max_new_tokens) == (9000, "0.0.0.0", 16)


def test_a_folder_that_is_no_run_fails_before_serving(tmp_path):
    with pytest.raises(UserError, match="not a training output folder"):
        run(AppArguments(adapter=str(tmp_path)))


def test_the_page_loads_nothing_from_other_hosts(session):
    from vlm_dpo.app.ui import serve

    port = free_port()
    demo = serve(session, "127.0.0.1", port)  # serves in the background
    try:
        base = f"http://127.0.0.1:{port}"
        page = urllib.request.urlopen(base + "/", timeout=30).read().decode()
        parser = Loads()
        parser.feed(page)
        styles = [url for url in parser.urls if url.endswith(".css")] + ["/theme.css"]
        assert len(styles) >= 2, parser.urls
        loads = parser.urls + css_loads(page)
        for style in styles:
            loads += css_loads(urllib.request.urlopen(base + "/" + style.lstrip("./"), timeout=30).read().decode())
        assert other_hosts(loads, port) == []
        assert "fonts.googleapis" not in page
        with pytest.raises(UserError, match=rf"Cannot serve on 127\.0\.0\.1:{port}"):  # the port is taken
            serve(session, "127.0.0.1", port)
    finally:
        demo.close()
    assert not port_open(port)


def test_other_hosts_are_spotted():
    urls = ["./assets/a.js", "https://fonts.googleapis.com/css2?family=Inter", "http://127.0.0.1:1234/x.css",
            "//cdn.example.org/k.js", "http://127.0.0.1:9999/y.css"]
    assert other_hosts(urls, 1234) == urls[1:2] + urls[3:]
    assert css_loads("a{background:url('data:image/png;base64,xx')} @import 'https://x.org/a.css';"
                     "b{src:url(https://fonts.gstatic.com/f.woff2)}") == ["https://fonts.gstatic.com/f.woff2",
                                                                          "https://x.org/a.css"]


def test_uploads_live_in_a_folder_of_the_apps_own_that_goes_when_it_stops(session, monkeypatch):
    """Gradio keeps uploads in GRADIO_TEMP_DIR: the app points it at its own folder and deletes it on the way out."""
    import os
    from pathlib import Path

    import vlm_dpo.app
    import vlm_dpo.app.ui

    seen = []

    def fake_serve(served, host, port, stop):
        folder = Path(os.environ["GRADIO_TEMP_DIR"])
        (folder / "upload.png").write_bytes(b"an uploaded file")
        seen.append(folder)

    monkeypatch.setattr(vlm_dpo.app, "load_session", lambda *args: session)
    monkeypatch.setattr(vlm_dpo.app.ui, "serve", fake_serve)
    before = os.environ.get("GRADIO_TEMP_DIR")
    assert run(AppArguments(adapter="unused")) == 0
    assert seen and seen[0].name.startswith("vlm-dpo-app-") and not seen[0].exists()
    assert os.environ.get("GRADIO_TEMP_DIR") == before
