"""``python -m stripe_sandbox trigger``: each recipe makes its event happen through the API
(checked in the sandbox's own event list), and the command's argument handling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import stripe
from sandbox_helpers import API_KEY, event_types

from stripe_sandbox import Sandbox
from stripe_sandbox.cli import main
from stripe_sandbox.cli.client import Client, default_api_base
from stripe_sandbox.cli.recipes import RECIPES
from stripe_sandbox.cli.trigger import customized, play

HANDLED_BY_THE_APP = [
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "customer.subscription.updated",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.payment_succeeded",
    "price.created",
    "price.deleted",
    "price.updated",
    "product.created",
    "product.deleted",
    "product.updated",
]


COMMON = [
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "invoice.created",
    "invoice.finalized",
    "invoice.updated",
    "invoice.voided",
    "price.created",
    "price.updated",
    "product.created",
    "product.updated",
    "product.deleted",
    "payment_intent.created",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "charge.succeeded",
    "charge.failed",
    "payment_method.attached",
    "customer.subscription.trial_will_end",
]


def test_recipes_cover_the_apps_types_and_the_common_ones() -> None:
    # tests/test_stripe_cli.py checks the list against the app's own (the sandbox's suite
    # imports nothing from app/)
    assert set(HANDLED_BY_THE_APP + COMMON) <= set(RECIPES)


@pytest.mark.parametrize("event_type", sorted(RECIPES))
def test_trigger_makes_the_event_happen(
    sb: Sandbox, client: stripe.StripeClient, event_type: str
) -> None:
    assert sb.url
    play(Client(sb.url, API_KEY), RECIPES[event_type])
    assert event_type in event_types(client)


def test_add_and_remove_edit_a_step() -> None:
    steps = customized(
        RECIPES["checkout.session.completed"],
        ["checkout_session:metadata.userId=u1", "checkout_session:client_reference_id=u1"],
        ["checkout_session:cancel_url"],
    )
    params = next(s for s in steps if s["name"] == "checkout_session")["params"]
    assert params["metadata"] == {"userId": "u1"} and params["client_reference_id"] == "u1"
    assert "cancel_url" not in params
    original = next(
        s for s in RECIPES["checkout.session.completed"] if s["name"] == "checkout_session"
    )
    assert "metadata" not in original["params"]  # the recipe itself is untouched
    with pytest.raises(ValueError, match="STEP:PARAM=VALUE"):
        customized(RECIPES["customer.created"], ["nostep:name=x"], [])


def test_trigger_command(sb: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    assert sb.url
    base = ["--api-base", sb.url, "--api-key", API_KEY]
    assert main(["trigger", "customer.created", *base, "--add", "customer:name=Ada"]) == 0
    out = capsys.readouterr().out
    assert "Trigger succeeded!" in out
    assert main(["trigger", "no.such_event", *base]) == 1
    assert "not supported" in capsys.readouterr().err
    assert main(["trigger", "--list"]) == 0
    assert "invoice.paid" in capsys.readouterr().out.split()
    unreachable = ["--api-base", "http://127.0.0.1:9", "--no-wait"]
    assert main(["trigger", "customer.created", *unreachable]) == 1
    assert "could not reach the sandbox" in capsys.readouterr().err


def test_default_api_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STRIPE_API_BASE", raising=False)
    monkeypatch.setenv("SANDBOX_INFO_FILE", str(tmp_path / "none.json"))
    assert default_api_base() == "http://127.0.0.1:12111"
    info = tmp_path / "stripe-sandbox.json"
    info.write_text(json.dumps({"STRIPE_API_BASE": "http://127.0.0.1:4242"}))
    monkeypatch.setenv("SANDBOX_INFO_FILE", str(info))
    assert default_api_base() == "http://127.0.0.1:4242"  # the running dev server's sandbox
    monkeypatch.setenv("STRIPE_API_BASE", "http://127.0.0.1:5555")
    assert default_api_base() == "http://127.0.0.1:5555"


def test_checkout_completed_recipe_pays_through_payment_pages_as_the_cli_does(
    sb: Sandbox, client: stripe.StripeClient
) -> None:
    assert sb.url
    answers = play(Client(sb.url, API_KEY), RECIPES["checkout.session.completed"])
    paths = [step.get("path", "") for step in RECIPES["checkout.session.completed"]]
    assert "/v1/payment_pages/${payment_page:id}/confirm" in paths
    session = client.v1.checkout.sessions.retrieve(answers["checkout_session"]["id"])
    assert session.status == "complete" and session.payment_status == "paid"
    assert client.v1.subscriptions.retrieve(str(session.subscription)).status == "active"
    # A page can be confirmed once; a declined card is refused like on the hosted page.
    again = Client(sb.url, API_KEY)
    with pytest.raises(Exception, match="already complete"):
        again.request(
            "POST",
            f"/v1/payment_pages/{session.id}/confirm",
            {"payment_method": "pm_card_visa"},
        )


def test_trial_will_end_recipe_is_a_one_day_trial_warned_at_once(
    sb: Sandbox, client: stripe.StripeClient
) -> None:
    assert sb.url
    answers = play(Client(sb.url, API_KEY), RECIPES["customer.subscription.trial_will_end"])
    sub = answers["subscription"]
    assert sub["status"] == "trialing" and sub["trial_end"] - sub["trial_start"] == 86_400
    warned = client.v1.events.list(params={"type": "customer.subscription.trial_will_end"}).data
    assert [event.data.object.id for event in warned] == [sub["id"]]


def test_portal_session_recipe_sends_the_created_event(
    sb: Sandbox, client: stripe.StripeClient
) -> None:
    assert sb.url
    answers = play(Client(sb.url, API_KEY), RECIPES["billing_portal.session.created"])
    created = client.v1.events.list(params={"type": "billing_portal.session.created"}).data
    assert [event.data.object.id for event in created] == [answers["billing_portal"]["id"]]
