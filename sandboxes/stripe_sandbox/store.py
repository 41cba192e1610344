"""Thread-safe in-memory object store (optionally persisted to a JSON file).

Objects are kept in their API shape, one collection per ``object`` value.
Keys starting with ``_`` are sandbox-private and never rendered.
"""

from __future__ import annotations

import copy
import json
import marshal
import os
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from .errors import not_found

Renderer = Callable[["Store", dict[str, Any]], dict[str, Any]]

# object type -> function building the API view of a stored object
RENDERERS: dict[str, Renderer] = {}

# readable names used in "No such ..." messages
KIND_NAMES: dict[str, str] = {
    "checkout.session": "checkout.session",
    "billing_portal.session": "billing_portal.session",
    "test_helpers.test_clock": "test_clock",
    "subscription_item": "subscription item",
    "payment_intent": "payment_intent",
    "payment_method": "PaymentMethod",
    "webhook_endpoint": "webhook endpoint",
    "setup_intent": "setupintent",
    "subscription_schedule": "subscription schedule",
    "invoiceitem": "invoiceitem",
}


def renderer(kind: str) -> Callable[[Renderer], Renderer]:
    def register(fn: Renderer) -> Renderer:
        RENDERERS[kind] = fn
        return fn

    return register


def strip_private(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in obj.items() if not k.startswith("_")}


class Store:
    def __init__(self, state_path: str | None = None) -> None:
        self.lock = threading.RLock()
        self.state_path = state_path
        self.collections: dict[str, dict[str, dict[str, Any]]] = {}
        self.index: dict[str, str] = {}
        self.seq = 0
        self.idempotency: dict[str, dict[str, Any]] = {}
        self._journal: dict[str, tuple[str, bytes | None]] | None = None
        if state_path and os.path.exists(state_path):
            self.load()

    # ------------------------------------------------------------ basics
    def clear(self) -> None:
        with self.lock:
            self.collections.clear()
            self.index.clear()
            self.idempotency.clear()
            self.seq = 0

    def insert(self, obj: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.seq += 1
            obj["_seq"] = self.seq
            kind = obj["object"]
            if self._journal is not None and obj["id"] not in self._journal:
                self._journal[obj["id"]] = (kind, None)
            self.collections.setdefault(kind, {})[obj["id"]] = obj
            self.index[obj["id"]] = kind
            return obj

    def get(self, kind: str, obj_id: str) -> dict[str, Any] | None:
        obj = self.collections.get(kind, {}).get(obj_id)
        if obj is not None and self._journal is not None:
            self.touch(obj)
        return obj

    def require(self, kind: str, obj_id: Any, param: str = "id") -> dict[str, Any]:
        obj = self.get(kind, obj_id) if isinstance(obj_id, str) else None
        if obj is None or obj.get("_deleted"):
            raise not_found(KIND_NAMES.get(kind, kind), str(obj_id), param)
        return obj

    def find(self, obj_id: str) -> dict[str, Any] | None:
        kind = self.index.get(obj_id)
        return self.get(kind, obj_id) if kind else None

    def all(self, kind: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Objects of a kind, newest first."""
        objs = [
            o
            for o in self.collections.get(kind, {}).values()
            if include_deleted or not o.get("_deleted")
        ]
        objs.sort(key=lambda o: (o.get("created") or 0, o["_seq"]), reverse=True)
        return objs

    def remove(self, kind: str, obj_id: str) -> None:
        with self.lock:
            obj = self.get(kind, obj_id)
            if obj is not None:
                self.collections[kind].pop(obj_id, None)
                self.index.pop(obj_id, None)

    # ------------------------------------------------------ transactions
    # A failed operation is rolled back from a journal: the first time an object is
    # handed out (get/require/find, or ``touch`` for objects taken from ``all``)
    # during an operation, a copy is kept; objects inserted are remembered.
    def begin(self) -> None:
        self._journal = {}

    def commit(self) -> None:
        self._journal = None

    def rollback(self) -> None:
        journal, self._journal = self._journal, None
        for obj_id, (kind, saved) in (journal or {}).items():
            collection = self.collections.setdefault(kind, {})
            if saved is None:
                collection.pop(obj_id, None)
                self.index.pop(obj_id, None)
            else:
                collection[obj_id] = marshal.loads(saved)
                self.index[obj_id] = kind

    def touch(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Record ``obj`` before it is changed (for objects taken from ``all``)."""
        if self._journal is not None and obj["id"] not in self._journal:
            self._journal[obj["id"]] = (obj["object"], marshal.dumps(obj))
        return obj

    # --------------------------------------------------------- rendering
    def render(self, obj: dict[str, Any]) -> dict[str, Any]:
        fn = RENDERERS.get(obj["object"])
        if obj.get("_deleted"):
            return {"id": obj["id"], "object": obj["object"], "deleted": True}
        return fn(self, obj) if fn else strip_private(obj)

    def render_id(self, obj_id: str) -> dict[str, Any] | None:
        obj = self.find(obj_id)
        return self.render(obj) if obj is not None else None

    # ------------------------------------------------------- persistence
    def save(self) -> None:
        if not self.state_path:
            return
        with self.lock:
            data = json.dumps({"seq": self.seq, "collections": self.collections})
        directory = os.path.dirname(os.path.abspath(self.state_path))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".sandbox-state")
        with os.fdopen(fd, "w") as fh:
            fh.write(data)
        os.replace(tmp, self.state_path)

    def load(self) -> None:
        assert self.state_path
        with open(self.state_path) as fh:
            data = json.load(fh)
        with self.lock:
            self.seq = data.get("seq", 0)
            self.collections = data.get("collections", {})
            self.idempotency = data.get("idempotency", {})
            self.index = {oid: kind for kind, objs in self.collections.items() for oid in objs}
