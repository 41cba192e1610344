"""What the webhooks offer the routes: receive one signed delivery (`receive`: verify, record
durably, answer), the two ways a delivery is refused, and the fast path's two halves of
`receive` (`accepted`: checked without a context; `record`: written), and `record_batch` for the
asyncio server's inbox, which gathers its batches itself. The work is in `receive.py`;
applying recorded events is the applier's (`applier.py`), never a route's."""

from __future__ import annotations

from app.billing.webhooks.receive import (
    BadSignature,
    MalformedEvent,
    Receipt,
    accepted,
    receive,
    record,
    record_batch,
)
from app.billing.webhooks.store import Recorded

__all__ = [
    "BadSignature",
    "MalformedEvent",
    "Receipt",
    "Recorded",
    "accepted",
    "receive",
    "record",
    "record_batch",
]
