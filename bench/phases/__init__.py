"""The measured phases, one module each: `baseline` (bare Temporal), `burst` (our intake → wake-up →
sends), `memory` (sleeping journeys' worker RSS), `simulate` (`renewals simulate` wall time) and
`codec` (`--codec`: the payload codec's cost, burst and simulate with and without it)."""
