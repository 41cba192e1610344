"""Resource handlers; importing this package registers every /v1 route."""

from . import (  # noqa: F401
    catalog,
    checkout,
    customers,
    event_api,
    invoices,
    payments,
    portal,
    subscriptions,
    test_clocks,
    webhook_endpoints,
)
