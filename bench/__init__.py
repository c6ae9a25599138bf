"""The performance benchmark (issue 5): bare Temporal vs our journeys on the same dev server.

Run with `python -m bench` (see docs/performance.md). Not part of the test suite.
"""
