"""Running what falls due (trials, renewals, retries, cancellations) in time
order, for wall time or a test clock."""

from __future__ import annotations

from typing import Any

from ..context import Ctx
from .checkout import expire_due_sessions
from .constants import ENDED, INCOMPLETE_EXPIRES_AFTER, TRIAL_WILL_END_BEFORE
from .cycle import end_trial, expire_incomplete, renew, retry_invoice
from .lifecycle import cancel_now, current_period

Action = tuple[int, int, str, str]


def retry_index(ctx: Ctx) -> dict[str, list[Action]]:
    """Scheduled payment retries of open invoices, by subscription id."""
    out: dict[str, list[Action]] = {}
    for invoice in ctx.store.collections.get("invoice", {}).values():
        if (
            invoice["status"] == "open"
            and invoice["subscription"]
            and invoice["next_payment_attempt"] is not None
            and invoice["attempt_count"] > 0
            and not invoice.get("_deleted")
        ):
            out.setdefault(invoice["subscription"], []).append(
                (invoice["next_payment_attempt"], 4, "retry", invoice["id"])
            )
    return out


def due_actions(
    ctx: Ctx, sub: dict[str, Any], retries: dict[str, list[Action]] | None = None
) -> list[Action]:
    """``(time, priority, kind, target_id)`` of everything scheduled for a subscription."""
    status = sub["status"]
    out: list[tuple[int, int, str, str]] = []
    if status in ENDED or status == "paused":
        return out
    if status == "incomplete":
        out.append((sub["created"] + INCOMPLETE_EXPIRES_AFTER, 0, "expire_incomplete", sub["id"]))
        return out
    if status == "trialing" and sub["trial_end"]:
        if sub.get("cancel_at") is not None and sub["cancel_at"] < sub["trial_end"]:
            out.append((sub["cancel_at"], 0, "cancel", sub["id"]))
        if not sub.get("_trial_will_end_sent"):
            # Three days before the end; at once for a trial shorter than that (as Stripe: the
            # CLI's recipe for this event is a one-day trial).
            warn_at = max(sub["trial_end"] - TRIAL_WILL_END_BEFORE, sub["created"])
            out.append((warn_at, 3, "trial_will_end", sub["id"]))
        out.append((sub["trial_end"], 2, "trial_end", sub["id"]))
        return out
    pause = sub.get("pause_collection")
    if pause and pause.get("resumes_at"):
        out.append((pause["resumes_at"], 1, "unpause", sub["id"]))
    _start, end = current_period(ctx, sub)
    if sub.get("cancel_at") is not None and sub["cancel_at"] <= end:
        out.append((sub["cancel_at"], 0, "cancel", sub["id"]))
    else:
        out.append((end, 2, "renew", sub["id"]))
    if retries is None:
        retries = retry_index(ctx)
    out.extend(retries.get(sub["id"], []))
    return out


def run_due(
    ctx: Ctx, subs: list[dict[str, Any]], until: int, clock: dict[str, Any] | None = None
) -> None:
    """Perform every scheduled action up to ``until`` in time order."""
    for _ in range(10000):
        retries = retry_index(ctx)
        actions = [a for s in subs for a in due_actions(ctx, s, retries) if a[0] <= until]
        if not actions:
            return
        at, _prio, kind, target = min(actions)
        if clock is not None:
            clock["frozen_time"] = max(clock["frozen_time"], at)
        if kind == "retry":
            invoice = ctx.store.get("invoice", target)
            assert invoice is not None
            retry_invoice(ctx, invoice, at)
            continue
        sub = ctx.store.get("subscription", target)
        assert sub is not None
        if kind == "expire_incomplete":
            expire_incomplete(ctx, sub, at)
        elif kind == "trial_will_end":
            sub["_trial_will_end_sent"] = True
            ctx.emit("customer.subscription.trial_will_end", sub)
        elif kind == "trial_end":
            end_trial(ctx, sub, at)
        elif kind == "cancel":
            cancel_now(ctx, sub, at=at)
        elif kind == "renew":
            renew(ctx, sub, at)
        elif kind == "unpause":
            before = ctx.render(sub)
            sub["pause_collection"] = None
            ctx.emit_updated("customer.subscription.updated", sub, before)
            ctx.emit("customer.subscription.resumed", sub)


def advance_clock(ctx: Ctx, clock: dict[str, Any], target: int) -> None:
    clock["status"] = "advancing"
    ctx.emit("test_helpers.test_clock.advancing", clock)
    subs = [s for s in ctx.store.all("subscription") if s.get("test_clock") == clock["id"]]
    run_due(ctx, subs, target, clock)
    clock["frozen_time"] = target
    expire_due_sessions(ctx, clock_id=clock["id"])
    clock["status"] = "ready"
    ctx.emit("test_helpers.test_clock.ready", clock)


def tick_wall(ctx: Ctx, now: int) -> None:
    """Run what fell due in wall time for objects not on a test clock."""
    subs = [
        s
        for s in ctx.store.all("subscription")
        if not s.get("test_clock") and s["status"] not in ENDED
    ]
    if subs:
        run_due(ctx, subs, now)
    expire_due_sessions(ctx, clock_id=None)
