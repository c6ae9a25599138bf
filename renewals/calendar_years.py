"""The years the Russian production calendar is built for (see renewals.sendwindow)."""

CALENDAR_YEARS = range(2020, 2041)
