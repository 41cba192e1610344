"""The API version objects are shaped as (the version the SDK pins)."""

API_VERSION = "2026-10-28.endive"
