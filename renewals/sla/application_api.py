"""The application journey's names on the wire: its workflow type and its messages.

The shapes they carry are the pydantic models of `renewals.sla.models`. `workflows/sla.py` declares
its handlers with these constants; callers that do not import the workflow (a cabinet webhook, a
script) use them with an untyped handle, never string literals.
"""

from __future__ import annotations

WORKFLOW_TYPE = "PartnerApplication"  # ApplicationInput → ApplicationStatus
CHANGE_STATUS_UPDATE = "change_status"  # StatusChange → ApplicationStatus (validated: refusals rejected)
STATUS_CHANGED_SIGNAL = "status_changed"  # StatusChange (a refused move is kept in `rejected`)
RECORD_ANSWER_UPDATE = "record_answer"  # EscalationAnswer → ApplicationStatus (validated)
CLOSE_SIGNAL = "close"  # CloseRequest
STATUS_QUERY = "status"  # optional datetime (the caller's now) → ApplicationStatus

SIMULATION_WORKFLOW_TYPE = "SimulateApplication"  # SimulationRun → ApplicationStatus
