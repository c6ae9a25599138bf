"""Make a Temporal namespace ready for journeys: register the custom search attributes.

On the dev server or a self-hosted cluster `renewals setup` (starter/setup.py) adds what is missing
through the OperatorService. Temporal Cloud does not let a namespace's API key or certificate do that
(search attributes are managed through Cloud's control plane), so there it lists what is present and
prints the `tcld` command a namespace admin runs for the rest — and exits 0, because nothing is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

from renewals import search_attributes as sa

if TYPE_CHECKING:
    from renewals.settings import Settings

ALL_KEYS = sa.ALL  # renewal journeys and partner applications
# What the server answers when this client may not add search attributes (Cloud, restricted roles).
NOT_ALLOWED = (RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNIMPLEMENTED)
TCLD_TYPES = {
    "KEYWORD": "Keyword",
    "TEXT": "Text",
    "INT": "Int",
    "DOUBLE": "Double",
    "BOOL": "Bool",
    "DATETIME": "Datetime",
    "KEYWORD_LIST": "KeywordList",
}


@dataclass(frozen=True)
class SetupResult:
    namespace: str
    present: list[str] = field(default_factory=list)  # registered before
    added: list[str] = field(default_factory=list)  # registered now
    manual: list[SearchAttributeKey[Any]] = field(default_factory=list)  # for a namespace admin

    def tcld_command(self) -> str:
        """The Temporal Cloud command that adds the missing attributes (one line, copy-paste ready)."""
        flags = " ".join(
            f'--search-attribute "{key.name}={TCLD_TYPES[key.indexed_value_type.name]}"'
            for key in self.manual
        )
        return f"tcld namespace search-attributes add --namespace {self.namespace} {flags}"

    def report(self) -> str:
        lines = [
            f"search attributes present: {', '.join(self.present) or 'none'}",
            f"search attributes added: {', '.join(self.added) or 'none'}",
        ]
        if self.manual:
            lines += [
                f"not added here ({', '.join(key.name for key in self.manual)}): this connection may not "
                "add search attributes (Temporal Cloud). A namespace admin runs:",
                f"  {self.tcld_command()}",
                "or adds them in the Cloud UI (Namespaces → namespace → Search Attributes).",
            ]
        return "\n".join(lines)


def is_cloud(settings: Settings) -> bool:
    """Temporal Cloud: an API key, or a Cloud endpoint (`*.tmprl.cloud`, `*.api.temporal.io`)."""
    host = settings.temporal_address.rpartition(":")[0] or settings.temporal_address
    return (
        settings.temporal_api_key is not None
        or host.endswith(".tmprl.cloud")
        or host.endswith(".api.temporal.io")
    )


async def setup_namespace(
    client: Client,
    namespace: str = "default",
    keys: Sequence[SearchAttributeKey[Any]] = ALL_KEYS,
    cloud: bool = False,
) -> SetupResult:
    """List the namespace's search attributes and add the missing ones — or, on Temporal Cloud (or
    when the server says this client may not), leave them for `tcld`. Never adds one that exists."""
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        known = set(existing.custom_attributes) | set(existing.system_attributes)
    except RPCError as error:  # the time-skipping test server cannot list; Cloud may not let us
        if error.status not in NOT_ALLOWED:
            raise
        known = set()
    present = sorted(key.name for key in keys if key.name in known)
    missing = [key for key in keys if key.name not in known]
    if not missing:
        return SetupResult(namespace, present)
    if cloud:
        return SetupResult(namespace, present, manual=missing)
    request = AddSearchAttributesRequest(
        search_attributes={
            key.name: IndexedValueType.ValueType(key.indexed_value_type.value) for key in missing
        },
        namespace=namespace,
    )
    try:
        await client.operator_service.add_search_attributes(request)
    except RPCError as error:
        if error.status in NOT_ALLOWED:
            return SetupResult(namespace, present, manual=missing)
        if error.status is not RPCStatusCode.ALREADY_EXISTS:
            raise
    return SetupResult(namespace, present, added=sorted(key.name for key in missing))


async def register_search_attributes(
    client: Client, namespace: str = "default", keys: Sequence[SearchAttributeKey[Any]] = sa.JOURNEY
) -> list[str]:
    """Add the search attributes (the journey's by default) the namespace lacks; returns the names added.

    For the dev server and test servers, where adding must work: anything else is an error."""
    result = await setup_namespace(client, namespace, keys)
    if result.manual:
        raise RuntimeError(result.report())
    return result.added
