"""Make a Temporal namespace ready for journeys: register the custom search attributes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

from renewals import search_attributes as sa
from renewals.sla import search_attributes as sla_sa

ALL_KEYS = (*sa.ALL, *sla_sa.ALL)  # renewal journeys and partner applications


async def register_search_attributes(
    client: Client, namespace: str = "default", keys: Sequence[SearchAttributeKey[Any]] = sa.ALL
) -> list[str]:
    """Add the search attributes (the journey's by default) the namespace lacks; returns the names added.

    The time-skipping test server cannot list search attributes: there every one is added.
    """
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        known = set(existing.custom_attributes) | set(existing.system_attributes)
    except RPCError as error:
        if error.status is not RPCStatusCode.UNIMPLEMENTED:
            raise
        known = set()
    missing = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type.value)
        for key in keys
        if key.name not in known
    }
    if missing:
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(search_attributes=missing, namespace=namespace)
            )
        except RPCError as error:
            if error.status is not RPCStatusCode.ALREADY_EXISTS:
                raise
    return sorted(missing)


async def main() -> int:
    """`renewals setup`: works against the dev server and a real cluster alike."""
    from renewals.settings import get_settings
    from worker import connect

    settings = get_settings()
    client = await connect(settings)
    added = await register_search_attributes(client, settings.temporal_namespace, ALL_KEYS)
    print(f"search attributes added: {', '.join(added) or 'none (all present)'}")
    return 0
