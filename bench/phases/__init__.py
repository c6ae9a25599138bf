"""The measured phases, one module each: `baseline` (bare Temporal), `burst` (our intake → wake-up →
sends), `memory` (sleeping journeys' worker RSS) and `simulate` (`renewals simulate` wall time)."""
