"""Intake: read a portfolio file (CSV or JSONL), validate every row precisely, store the good rows.

A bad row never stops the good ones: it is reported with file, line, field and reason and written to
a rejects file in the input's own format, which imports again once fixed.
"""
