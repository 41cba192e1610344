"""The hosted pages' HTML: the page frame, errors, redirects, dates."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

from werkzeug.wrappers import Response

STYLE = """
body{font-family:system-ui,sans-serif;max-width:720px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.4em;
text-align:left}.error{color:#b00020;font-weight:bold}.note{color:#555}
form.inline{display:inline}input,select,button{font-size:1em;margin:.2em 0;padding:.3em}
.subscription{border:1px solid #ccc;border-radius:6px;padding:1em;margin:1em 0}
"""


def page(title: str, body: str, status: int = 200) -> Response:
    html = (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f'<body>\n<h1 id="title">{escape(title)}</h1>\n{body}\n</body></html>\n'
    )
    return Response(html, status=status, content_type="text/html; charset=utf-8")


def redirect(location: str) -> Response:
    return Response("", status=303, headers={"Location": location})


def date(ts: int | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d")


def error_html(message: str | None) -> str:
    if not message:
        return ""
    return f'<p id="error" class="error" role="alert">{escape(message)}</p>'
