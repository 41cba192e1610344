"""Billing portal: the default configuration, portal sessions (with flows), and what the
portal page lets a customer do (cancel, renew, switch plan)."""

from __future__ import annotations

from typing import Any

from ..context import Ctx
from ..errors import bad_state
from ..ids import new_id
from ..timeutil import wall_now
from .changes import change_items
from .constants import ENDED
from .items import items_of, price_of
from .lifecycle import set_cancel_at_period_end


def default_configuration(ctx: Ctx) -> dict[str, Any]:
    for conf in ctx.store.all("billing_portal.configuration"):
        if conf["is_default"]:
            return conf
    now = wall_now()
    conf = {
        "id": new_id("bpc"),
        "object": "billing_portal.configuration",
        "active": True,
        "application": None,
        "business_profile": {
            "headline": None,
            "privacy_policy_url": None,
            "terms_of_service_url": None,
        },
        "created": now,
        "default_return_url": None,
        "features": {
            "customer_update": {"allowed_updates": ["email"], "enabled": True},
            "invoice_history": {"enabled": True},
            "payment_method_update": {"enabled": True},
            "subscription_cancel": {
                "cancellation_reason": {"enabled": False, "options": []},
                "enabled": True,
                "mode": "at_period_end",
                "proration_behavior": "none",
            },
            "subscription_update": {
                "default_allowed_updates": ["price"],
                "enabled": True,
                "proration_behavior": "create_prorations",
                "products": [],
            },
        },
        "is_default": True,
        "livemode": False,
        "login_page": {"enabled": False, "url": None},
        "metadata": {},
        "name": None,
        "updated": now,
    }
    ctx.store.insert(conf)
    return conf


def portal_flow(p: dict[str, Any] | None) -> dict[str, Any] | None:
    if not p:
        return None
    after = p.get("after_completion") or {"type": "portal_homepage"}
    return {
        "type": p["type"],
        "after_completion": {
            "type": after["type"],
            "hosted_confirmation": (
                {"custom_message": (after.get("hosted_confirmation") or {}).get("custom_message")}
                if after["type"] == "hosted_confirmation"
                else None
            ),
            "redirect": (
                {"return_url": after["redirect"]["return_url"]}
                if after["type"] == "redirect" and after.get("redirect")
                else None
            ),
        },
        "subscription_cancel": (
            {"retention": None, "subscription": p["subscription_cancel"]["subscription"]}
            if p.get("subscription_cancel")
            else None
        ),
        "subscription_update": (
            {"subscription": p["subscription_update"]["subscription"]}
            if p.get("subscription_update")
            else None
        ),
        "subscription_update_confirm": (
            {
                "discounts": None,
                "items": [
                    {"id": i["id"], "price": i.get("price"), "quantity": i.get("quantity")}
                    for i in p["subscription_update_confirm"]["items"]
                ],
                "subscription": p["subscription_update_confirm"]["subscription"],
            }
            if p.get("subscription_update_confirm")
            else None
        ),
    }


def new_portal_session(ctx: Ctx, customer: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    if p.get("configuration"):
        conf = ctx.store.require(
            "billing_portal.configuration", p["configuration"], "configuration"
        )
    else:
        conf = default_configuration(ctx)
    flow = p.get("flow_data")
    if flow:
        _check_flow(ctx, customer, flow)
    session_id = new_id("bps")
    session = {
        "id": session_id,
        "object": "billing_portal.session",
        "configuration": conf["id"],
        "created": ctx.now_for(customer["id"]),
        "customer": customer["id"],
        "customer_account": None,
        "flow": portal_flow(flow),
        "livemode": False,
        "locale": p.get("locale"),
        "on_behalf_of": p.get("on_behalf_of"),
        "return_url": p.get("return_url") or conf.get("default_return_url"),
        "url": ctx.url(f"/portal/{session_id}"),
    }
    ctx.store.insert(session)
    ctx.emit("billing_portal.session.created", session)
    return session


def _check_flow(ctx: Ctx, customer: dict[str, Any], flow: dict[str, Any]) -> None:
    key = flow["type"]
    if key != "payment_method_update" and not flow.get(key):
        raise bad_state(f"Missing required param: flow_data[{key}].", f"flow_data[{key}]")
    if flow.get(key):
        sub_id = flow[key]["subscription"]
        sub = ctx.store.require("subscription", sub_id, f"flow_data[{key}][subscription]")
        if sub["customer"] != customer["id"]:
            raise bad_state(
                "The subscription does not belong to this customer.",
                f"flow_data[{key}][subscription]",
            )


def live_subscriptions(ctx: Ctx, customer_id: str) -> list[dict[str, Any]]:
    return [
        s
        for s in ctx.store.all("subscription")
        if s["customer"] == customer_id and s["status"] not in ENDED
    ]


def switch_options(ctx: Ctx, sub: dict[str, Any]) -> list[dict[str, Any]]:
    """The other active recurring prices of the subscription's product."""
    items = items_of(ctx.store, sub)
    if not items:
        return []
    current = price_of(ctx, items[0])
    return [
        p
        for p in ctx.store.all("price")
        if p["product"] == current["product"]
        and p["active"]
        and p["type"] == "recurring"
        and p["id"] != current["id"]
        and p["currency"] == current["currency"]
    ]


def portal_action(ctx: Ctx, sub: dict[str, Any], action: str, price_id: str = "") -> str | None:
    """Do what the portal page asked; returns an error message, or None when done."""
    ctx.store.touch(sub)
    before = ctx.render(sub)
    if action == "cancel":
        set_cancel_at_period_end(ctx, sub, True)
    elif action == "resume":
        set_cancel_at_period_end(ctx, sub, False)
    elif action == "switch":
        allowed = {p["id"]: p for p in switch_options(ctx, sub)}
        if price_id not in allowed:
            return "That plan is not available."
        item = items_of(ctx.store, sub)[0]
        change_items(
            ctx,
            sub,
            [{"id": item["id"], "price": price_id}],
            "create_prorations",
            lambda pid, param: allowed[pid],
        )
    else:
        return "Unknown action."
    ctx.emit_updated("customer.subscription.updated", sub, before)
    return None
