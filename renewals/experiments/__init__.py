"""Holdout experiments: did the reminders renew the policy? ([docs/experiments.md](../../docs/experiments.md))

`config` (what an experiment is and which touchpoints it holds out), `assignment` (the keyed hash that
puts a client in an arm, the same in every process, term and replay), `registry` (experiments and
arms in the application database; a running experiment cannot change), `outcomes` (secured by the end
of cover, per arm), `uplift` (the difference with its interval, test and power, from statsmodels),
`attribution` (the last touch before a secured renewal), `report` (terminal, CSV, HTML).
"""
