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
from collections.abc import Callable, Sequence

from app.billing.webhooks.store import Recorded

# Writes a batch (inside its own transaction) and returns the ids it inserted.
WriteBatch = Callable[[Sequence[Recorded]], set[str]]


class _Ticket:
    """One delivery in the inbox. A delivery that has to wait (another is writing) waits on
    `_wake`, a lock held from the start and released once, when its event is written or the
    lead is handed to it; a leader never waits, and allocates no lock (most deliveries when
    the load is low)."""

    __slots__ = ("_wake", "error", "event", "lead", "recorded")

    def __init__(self, event: Recorded) -> None:
        self.event = event
        self.lead = False  # handed the lead: write the waiting batch
        self.recorded: bool | None = None
        self.error: BaseException | None = None
        self._wake: threading.Lock | None = None

    def will_wait(self) -> threading.Lock:
        """Called under the inbox's lock, before anyone can wake it; acquire the lock it
        returns to wait."""
        self._wake = threading.Lock()
        self._wake.acquire()
        return self._wake

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.release()

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

    def record(self, event: Recorded, write: WriteBatch) -> bool:
        """Record `event` durably: True when it was new, False when it was there already (a
        redelivery). Raises what the write raised (nothing is acknowledged then)."""
        ticket = _Ticket(event)
        with self._lock:
            self._waiting.append(ticket)
            wake = ticket.will_wait() if self._writing else None
            self._writing = True
        if wake is not None:
            wake.acquire()
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
        with self._lock:
            if self._waiting:
                successor = self._waiting[0]
                successor.lead = True
                successor.wake()
            else:
                self._writing = False
        for ticket in batch:
            ticket.wake()
