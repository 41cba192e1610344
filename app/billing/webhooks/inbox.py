"""Durable acknowledgement by group commit: the events of the deliveries in flight in a process
are written together, one multi-row INSERT and one commit, and each delivery is answered only
after the commit that holds its event.

There is no writer thread and no timer. A delivery that finds no write in progress becomes the
leader: it writes every event waiting at that moment (its own included) in one transaction. The
deliveries that arrive meanwhile wait; when the leader's commit is done it hands the lead to the
first of them, which writes all that waited. At low load a batch is one event written at once; under
load the batches grow by themselves to what arrived during one commit, so the cost of a commit
is shared without adding a wait to any request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from app.billing.webhooks.store import Recorded

# Writes a batch (inside its own transaction) and returns the ids it inserted.
WriteBatch = Callable[[Sequence[Recorded]], set[str]]


@dataclass
class _Ticket:
    event: Recorded
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # handed the lead: write the waiting batch
    recorded: bool | None = None
    error: BaseException | None = None

    def outcome(self) -> bool:
        if self.error is not None:
            raise self.error
        return bool(self.recorded)


class Inbox:
    """One per app (a process may hold several in tests)."""

    def __init__(self, max_batch: int = 200) -> None:
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._waiting: list[_Ticket] = []
        self._writing = False
        # When the last batch was written (monotonic): the applier defers to busy ingest.
        self.last_write = 0.0

    def busy(self, within: float) -> bool:
        """Deliveries are being written now or were within the last `within` seconds."""
        return self._writing or time.monotonic() - self.last_write < within

    def record(self, event: Recorded, write: WriteBatch) -> bool:
        """Record `event` durably: True when it was new, False when it was there already (a
        redelivery). Raises what the write raised (nothing is acknowledged then)."""
        ticket = _Ticket(event)
        with self._lock:
            self._waiting.append(ticket)
            leads = not self._writing
            self._writing = True
        if not leads:
            ticket.done.wait()
            if not ticket.lead:
                return ticket.outcome()
        self._lead(write)
        return ticket.outcome()

    def _lead(self, write: WriteBatch) -> None:
        """Write what waits now (the leader's own event is first among it), wake its owners and
        hand the lead to the first delivery that arrived during the write."""
        with self._lock:
            batch = self._waiting[: self.max_batch]
            del self._waiting[: self.max_batch]
        try:
            inserted = write([ticket.event for ticket in batch])
        except BaseException as exc:  # every delivery of the batch answers the failure
            for ticket in batch:
                ticket.error = exc
        else:
            for ticket in batch:
                ticket.recorded = ticket.event.id in inserted
                inserted.discard(ticket.event.id)  # a second copy in the batch is a duplicate
        self.last_write = time.monotonic()
        with self._lock:
            if self._waiting:
                successor = self._waiting[0]
                successor.lead = True
                successor.done.set()
            else:
                self._writing = False
        for ticket in batch:
            ticket.done.set()
