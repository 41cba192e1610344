"""Resource handlers; importing this package registers every /v1 route."""

from . import (  # noqa: F401
    catalog,
    checkout,
    customers,
    discounts,
    event_api,
    invoice_items,
    invoice_previews,
    invoices,
    payment_intents,
    payment_methods,
    payment_pages,
    portal,
    refunds,
    setup_intents,
    subscription_schedules,
    subscriptions,
    test_clocks,
    webhook_endpoints,
)
