"""Custom search attributes of a journey, so operators can find journeys in the Temporal UI."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

POLICY_NUMBER = SearchAttributeKey.for_keyword("PolicyNumber")
PRODUCT = SearchAttributeKey.for_keyword("Product")
JOURNEY_STAGE = SearchAttributeKey.for_keyword("JourneyStage")
AGENT_ID = SearchAttributeKey.for_keyword("AgentId")
RENEWAL_CENTRE = SearchAttributeKey.for_keyword("RenewalCentre")
EXPIRES_ON = SearchAttributeKey.for_datetime("ExpiresOn")
SEND_FAILED = SearchAttributeKey.for_bool("SendFailed")  # set once a send has failed for good

ALL = (POLICY_NUMBER, PRODUCT, JOURNEY_STAGE, AGENT_ID, RENEWAL_CENTRE, EXPIRES_ON, SEND_FAILED)


def cli_flags() -> list[str]:
    """`--search-attribute NAME=TYPE` flags for `temporal server start-dev`."""
    types = {"KEYWORD": "Keyword", "DATETIME": "Datetime", "BOOL": "Bool"}
    return [f"--search-attribute={key.name}={types[key.indexed_value_type.name]}" for key in ALL]
