"""Partner issuance SLA: a durable journey per realtor application, measured in business time.

Pure domain (models, business-time arithmetic, clocks, the weekly report's numbers) so workflow code
may import it inside the sandbox; database and rendering modules are imported only by activities and
the CLI. Nothing here does I/O at import time.
"""
