"""The renewal centres' operator workbench: list a centre's tasks, claim one, record its outcome.

One service (`Workbench`) serves the CLI and the HTTP API, so both refuse the same things for the
same reasons. The outcome reaches the journey as the validated `operator_outcome` update; the
renewal keeps the agent on every path (an outcome never touches the policy's agent block).
"""
