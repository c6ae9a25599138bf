"""Make a Temporal namespace ready for journeys: register the custom search attributes and set the
retention period of closed workflows' histories.

On the dev server or a self-hosted cluster `renewals setup` (starter/setup.py) adds what is missing
through the OperatorService and sets the retention through the WorkflowService's UpdateNamespace.
Temporal Cloud does not let a namespace's API key or certificate do either (search attributes and
retention are managed through Cloud's control plane), so there it lists what is present and prints the
`tcld` commands a namespace admin runs for the rest — and exits 0, because nothing is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.namespace.v1 import NamespaceConfig
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, UpdateNamespaceRequest
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


# ---- retention of closed workflows ----------------------------------------------------------------

CLOUD_MAX_RETENTION_DAYS = 90  # Temporal Cloud's range is 1–90 days
DAY = 86400  # seconds


@dataclass(frozen=True)
class RetentionResult:
    namespace: str
    wanted_days: int
    before_days: float | None  # None: the server would not say (Temporal Cloud, restricted roles)
    changed: bool = False
    manual: bool = False  # left for a namespace admin (`tcld`)
    warning: str | None = None

    def tcld_command(self) -> str:
        return (
            f"tcld namespace retention set --namespace {self.namespace} --retention-days {self.wanted_days}"
        )

    def report(self) -> str:
        before = "unknown" if self.before_days is None else f"{self.before_days:g} days"
        if self.manual:
            lines = [
                f"retention of closed journeys: {before}, wanted {self.wanted_days} days: this connection "
                "may not change it (Temporal Cloud). A namespace admin runs:",
                f"  {self.tcld_command()}",
            ]
        elif self.changed:
            lines = [f"retention of closed journeys: set to {self.wanted_days} days (was {before})"]
        else:
            lines = [f"retention of closed journeys: {self.wanted_days} days (unchanged)"]
        return "\n".join([*lines, *([f"warning: {self.warning}"] if self.warning else [])])


def retention_warning(days: int, intake_horizon_days: int, cloud: bool) -> str | None:
    """What is wrong with `days` for journeys (see `set_retention`), or None."""
    if days < intake_horizon_days + 2:
        return (
            f"{days} days is shorter than the longest journey ({intake_horizon_days} days of intake "
            "horizon + the last day of cover): a journey that ended early could be started again by intake "
            "once Temporal has forgotten it"
        )
    if cloud and days > CLOUD_MAX_RETENTION_DAYS:
        return f"Temporal Cloud keeps closed workflows at most {CLOUD_MAX_RETENTION_DAYS} days"
    return None


async def set_retention(
    client: Client, namespace: str, days: int, cloud: bool = False, intake_horizon_days: int = 60
) -> RetentionResult:
    """Set how long the namespace keeps a closed journey's history (`settings.temporal_retention_days`).

    The period runs from the journey's close, and its history holds the client's personal data
    (encrypted, see renewals/encryption), so it should be as short as the journeys allow. The floor is
    the longest a journey lives, plus a margin: intake starts a term's journey up to
    `intake_horizon_days` before the last day of cover and reruns daily, and only the closed run that
    Temporal still keeps makes a rerun's start a duplicate (REJECT_DUPLICATE) — a journey that ended
    early (an opt-out on its first day) must be remembered until its term is over, else intake would
    start it again. The default, 90 days, is that horizon (60) plus a month for late provider reports,
    agents' and operators' questions and complaints about a message; it is also Temporal Cloud's
    maximum. What the application database keeps is limited separately (`renewals purge`).
    """
    warning = retention_warning(days, intake_horizon_days, cloud)
    try:
        described = await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace)
        )
        before: float | None = described.config.workflow_execution_retention_ttl.seconds / DAY
    except RPCError as error:
        if error.status not in NOT_ALLOWED:
            raise
        before = None
    if before == days:
        return RetentionResult(namespace, days, before, warning=warning)
    if cloud:
        return RetentionResult(namespace, days, before, manual=True, warning=warning)
    request = UpdateNamespaceRequest(
        namespace=namespace,
        config=NamespaceConfig(workflow_execution_retention_ttl=Duration(seconds=days * DAY)),
    )
    try:
        await client.workflow_service.update_namespace(request)
    except RPCError as error:
        if error.status in NOT_ALLOWED:
            return RetentionResult(namespace, days, before, manual=True, warning=warning)
        raise
    return RetentionResult(namespace, days, before, changed=True, warning=warning)
