"""Prolongation journeys: the domain of renewal informing for agent-channel clients.

Everything here is free of Temporal worker I/O so that workflow code can import the rules,
templates, models and the send window inside the workflow sandbox.
"""
