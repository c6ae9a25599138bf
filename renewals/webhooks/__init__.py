"""Webhooks into journeys: provider callbacks, robot outcomes and agent-portal events become signals.

Every source authenticates with its own secret (HMAC of the body, or a bearer secret for providers
that cannot sign); `(source, event_id)` makes a repeated callback a no-op; a callback for an unknown
policy gets a 404 and a log line.
"""
