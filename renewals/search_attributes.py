"""Custom search attributes of both workflow types, so operators find them in the Temporal UI:
journeys (`JourneyStage = "operator" AND RenewalCentre = "msk"`) and partner applications
(`SlaStatus = "paid" AND SlaBreached = true`). `renewals setup` and the dev server register `ALL`."""

from __future__ import annotations

from datetime import datetime, time
from typing import TYPE_CHECKING, Any

from temporalio.common import SearchAttributeKey, SearchAttributePair

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from renewals.models import Policy

# RenewalJourney
POLICY_NUMBER = SearchAttributeKey.for_keyword("PolicyNumber")
PRODUCT = SearchAttributeKey.for_keyword("Product")
JOURNEY_STAGE = SearchAttributeKey.for_keyword("JourneyStage")
AGENT_ID = SearchAttributeKey.for_keyword("AgentId")
RENEWAL_CENTRE = SearchAttributeKey.for_keyword("RenewalCentre")
EXPIRES_ON = SearchAttributeKey.for_datetime("ExpiresOn")
SEND_FAILED = SearchAttributeKey.for_bool("SendFailed")  # set once a send has failed for good

# PartnerApplication
SLA_STATUS = SearchAttributeKey.for_keyword("SlaStatus")
SLA_PARTNER = SearchAttributeKey.for_keyword("SlaPartner")
SLA_URGENT = SearchAttributeKey.for_bool("SlaUrgent")
SLA_BREACHED = SearchAttributeKey.for_bool("SlaBreached")

JOURNEY: tuple[SearchAttributeKey[Any], ...] = (
    POLICY_NUMBER,
    PRODUCT,
    JOURNEY_STAGE,
    AGENT_ID,
    RENEWAL_CENTRE,
    EXPIRES_ON,
    SEND_FAILED,
)
SLA: tuple[SearchAttributeKey[Any], ...] = (SLA_STATUS, SLA_PARTNER, SLA_URGENT, SLA_BREACHED)
ALL: tuple[SearchAttributeKey[Any], ...] = (*JOURNEY, *SLA)


def journey_attributes(policy: Policy, stage: str, tz: ZoneInfo) -> list[SearchAttributePair[Any]]:
    """A journey's search attributes: `start_journey` gives them to the start request, and the
    journey upserts them only when its start did not carry them (an older starter, a child
    workflow) or the policy changed. Given at the start, they cost the server no upsert event and
    no visibility update in each journey's first workflow task. `tz`: the client's zone, in which
    the last day of cover begins."""
    return [
        SearchAttributePair(POLICY_NUMBER, policy.number),
        SearchAttributePair(PRODUCT, policy.product.value),
        SearchAttributePair(AGENT_ID, policy.agent.id),
        SearchAttributePair(RENEWAL_CENTRE, policy.regional_centre.id if policy.regional_centre else ""),
        SearchAttributePair(EXPIRES_ON, datetime.combine(policy.expires_on, time(0), tzinfo=tz)),
        SearchAttributePair(JOURNEY_STAGE, stage),
    ]


def cli_flags() -> list[str]:
    """`--search-attribute NAME=TYPE` flags for `temporal server start-dev`."""
    types = {"KEYWORD": "Keyword", "DATETIME": "Datetime", "BOOL": "Bool"}
    return [f"--search-attribute={key.name}={types[key.indexed_value_type.name]}" for key in ALL]
