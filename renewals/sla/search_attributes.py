"""Search attributes of an application journey, so operators find applications in the Temporal UI
(`SlaStatus = "paid" AND SlaBreached = true`). Registered by `starter.sla.register_sla_search_attributes`."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

SLA_STATUS = SearchAttributeKey.for_keyword("SlaStatus")
SLA_PARTNER = SearchAttributeKey.for_keyword("SlaPartner")
SLA_URGENT = SearchAttributeKey.for_bool("SlaUrgent")
SLA_BREACHED = SearchAttributeKey.for_bool("SlaBreached")

ALL = (SLA_STATUS, SLA_PARTNER, SLA_URGENT, SLA_BREACHED)


def cli_flags() -> list[str]:
    """`--search-attribute NAME=TYPE` flags for `temporal server start-dev`."""
    types = {"KEYWORD": "Keyword", "BOOL": "Bool"}
    return [f"--search-attribute={key.name}={types[key.indexed_value_type.name]}" for key in ALL]
