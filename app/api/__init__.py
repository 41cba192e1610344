"""HTTP blueprints: parse, authorize, call the billing rules, shape the reply."""

from flask import Flask


def register_blueprints(app: Flask) -> None:
    from app.api import (
        checkout,
        invoices,
        meta,
        plan_changes,
        plans,
        portal,
        signin,
        subscriptions,
        usage,
        webhooks,
    )

    modules = (
        checkout,
        invoices,
        meta,
        plan_changes,
        plans,
        portal,
        signin,
        subscriptions,
        usage,
        webhooks,
    )
    for module in modules:
        app.register_blueprint(module.bp)
    app.register_blueprint(meta.probes)
    # In front of Flask for the webhook's common 200 (after the routes: it reads the rule).
    from app.api import webhook_fast_path

    webhook_fast_path.install(app)
