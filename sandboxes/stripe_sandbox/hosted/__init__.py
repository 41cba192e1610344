"""Server-rendered hosted pages, one module per family: Checkout (with a 3-D Secure step),
the billing portal, and the hosted invoice page. Plain HTML with stable ids."""

from __future__ import annotations

import traceback
from collections.abc import Callable

from werkzeug.wrappers import Request, Response

from ..context import Ctx
from ..errors import StripeError
from ..host import Host
from .checkout_pages import checkout_authenticate, checkout_get, checkout_post
from .html import error_html, page
from .invoice_pages import invoice_get, invoice_pdf, invoice_post
from .portal_pages import portal_get, portal_post

__all__ = ["handle_hosted"]


def handle_hosted(sb: Host, request: Request) -> Response:
    parts = [p for p in request.path.split("/") if p]
    method = request.method.upper()
    base_url = sb.base_url_for(request)
    routes: dict[tuple[str, int, str], Callable[[Ctx, Request, list[str]], Response]] = {
        ("checkout", 2, "GET"): checkout_get,
        ("checkout", 2, "POST"): checkout_post,
        ("checkout", 3, "POST"): checkout_authenticate,
        ("portal", 2, "GET"): portal_get,
        ("portal", 2, "POST"): portal_post,
        ("invoice", 2, "GET"): invoice_get,
        ("invoice", 2, "POST"): invoice_post,
        ("invoice", 3, "GET"): invoice_pdf,
    }
    fn = routes.get((parts[0], len(parts), method)) if parts else None
    if fn is None or (len(parts) == 3 and parts[2] not in ("authenticate", "pdf")):
        return page("Not found", error_html("This page does not exist."), 404)
    sb.run_due(base_url)
    with sb.store.lock:
        ctx = Ctx(sb.store, sb.config, base_url)
        sb.store.begin()
        try:
            response = fn(ctx, request, parts)
            sb.store.commit()
        except StripeError as err:
            sb.store.rollback()
            ctx.events.clear()
            response = page("Error", error_html(err.message), err.status)
        except Exception:
            sb.store.rollback()
            ctx.events.clear()
            traceback.print_exc()
            response = page(
                "Error", error_html("An unexpected error occurred in the Stripe sandbox."), 500
            )
        finally:
            sb.publish(ctx)
        if method == "POST":
            sb.store.save()
    return response
