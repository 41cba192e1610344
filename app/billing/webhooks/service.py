"""What the webhooks offer the routes: receive one signed delivery (`receive`: verify, record
durably, answer) and the two ways a delivery is refused. The work is in `receive.py`;
applying recorded events is the applier's (`applier.py`), never a route's."""

from __future__ import annotations

from app.billing.webhooks.receive import BadSignature, MalformedEvent, Receipt, receive

__all__ = ["BadSignature", "MalformedEvent", "Receipt", "receive"]
