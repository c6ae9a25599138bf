"""Custom search attributes of both workflow types, so operators find them in the Temporal UI:
journeys (`JourneyStage = "operator" AND RenewalCentre = "msk"`) and partner applications
(`SlaStatus = "paid" AND SlaBreached = true`). `renewals setup` and the dev server register `ALL`."""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeKey

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


def cli_flags() -> list[str]:
    """`--search-attribute NAME=TYPE` flags for `temporal server start-dev`."""
    types = {"KEYWORD": "Keyword", "DATETIME": "Datetime", "BOOL": "Bool"}
    return [f"--search-attribute={key.name}={types[key.indexed_value_type.name]}" for key in ALL]
