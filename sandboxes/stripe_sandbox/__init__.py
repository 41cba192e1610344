"""A stateful local Stripe (v1 subset) that the official SDK talks to unchanged.

from stripe_sandbox import Sandbox
sb = Sandbox()
url = sb.start()
client = stripe.StripeClient("sk_test_x", base_addresses={"api": url})
"""

from .sandbox import Sandbox

__all__ = ["Sandbox"]
