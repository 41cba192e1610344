"""Per-operation context: the store, switches, the clock of the moment, and the
events an operation emits (handed to the webhook dispatcher afterwards)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from . import events
from .errors import StripeError
from .store import Store
from .timeutil import wall_now
from .version import API_VERSION

__all__ = ["API_VERSION", "Config", "Ctx"]


@dataclass
class Config:
    """Test switches (see README)."""

    duplicate_deliveries: bool = False
    shuffle_deliveries: bool = False
    delivery_delay: float = 0.0
    retry_time_scale: float = 1.0
    failed_payment_outcome: str = "canceled"

    def update(self, **kwargs: Any) -> None:
        names = {f.name for f in fields(self)}
        for key, value in kwargs.items():
            if key not in names:
                raise ValueError(f"unknown sandbox setting {key!r}")
            if key == "failed_payment_outcome" and value not in ("canceled", "unpaid"):
                raise ValueError("failed_payment_outcome must be 'canceled' or 'unpaid'")
            if key in ("delivery_delay", "retry_time_scale"):
                value = float(value)
                if value < 0:
                    raise ValueError(f"{key} must be >= 0")
            if key in ("duplicate_deliveries", "shuffle_deliveries"):
                value = bool(value)
            setattr(self, key, value)

    def reset(self) -> None:
        for f in fields(self):
            setattr(self, f.name, f.default)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Ctx:
    def __init__(
        self,
        store: Store,
        config: Config,
        base_url: str = "",
        request_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.base_url = base_url.rstrip("/")
        self.request_id = request_id
        self.idempotency_key = idempotency_key
        self.events: list[dict[str, Any]] = []
        # payment methods made in this operation from magic ids (``pm_card_visa`` -> ``pm_…``)
        self.magic: dict[str, str] = {}
        # payment methods the customer authenticated (3-D Secure) in this operation
        self.authenticated: set[str] = set()

    # --------------------------------------------------------------- time
    def clock_time(self, clock_id: str | None) -> int:
        if clock_id:
            clock = self.store.get("test_helpers.test_clock", clock_id)
            if clock is not None:
                return int(clock["frozen_time"])
        return wall_now()

    def customer_clock(self, customer_id: str | None) -> str | None:
        if not customer_id:
            return None
        cus = self.store.get("customer", customer_id)
        return cus.get("test_clock") if cus else None

    def now_for(self, customer_id: str | None) -> int:
        """Current time for objects of this customer (its test clock's frozen time)."""
        return self.clock_time(self.customer_clock(customer_id))

    def time_of(self, obj: dict[str, Any]) -> int:
        clock = obj.get("test_clock")
        if not clock:
            customer = obj.get("customer")
            if isinstance(customer, dict):
                customer = customer.get("id")
            if obj.get("object") == "customer":
                clock = obj.get("test_clock")
            else:
                clock = self.customer_clock(customer if isinstance(customer, str) else None)
        return self.clock_time(clock)

    # ------------------------------------------------------------- events
    @property
    def _request(self) -> dict[str, str | None]:
        return {"id": self.request_id, "idempotency_key": self.idempotency_key}

    def render(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.store.render(obj)

    def emit(
        self,
        event_type: str,
        obj: dict[str, Any],
        previous_attributes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        event = events.build_event(
            self.store,
            self._request,
            event_type,
            self.render(obj),
            previous_attributes,
            self.time_of(obj),
        )
        self.events.append(event)
        return event

    def emit_updated(
        self, event_type: str, obj: dict[str, Any], before: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Emit ``*.updated`` with ``previous_attributes`` if the object changed."""
        after = self.render(obj)
        prev = events.diff(before, after)
        if not prev:
            return None
        event = events.build_event(
            self.store, self._request, event_type, after, prev, self.time_of(obj)
        )
        self.events.append(event)
        return event

    def url(self, path: str) -> str:
        if not self.base_url:
            raise StripeError(500, "The sandbox could not determine its own URL.", type="api_error")
        return f"{self.base_url}{path}"
