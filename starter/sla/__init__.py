"""`renewals sla ...`: the partner issuance SLA from the command line.

- commands.py: the `sla` subcommands (argparse) and their handlers
- inputs.py: the validated inputs of `sla simulate` (and the driver runs they become) and `sla submit`
- simulate.py: running the simulation on a time-skipping server, and its public output
- operations.py: submit / change status / answer / read status of live application journeys
"""
