"""Phase 5 (`--codec N`), the payload codec's cost (issue 11): our burst of `n` journeys and `renewals
simulate`, each with the encryption codec (production) and without it (the plain pydantic converter).

Each burst runs on a fresh in-memory dev server with a gateway of its own, the codec-less one first: a
later run on a machine that has warmed up is, if anything, favoured, so the order does not flatter the
codec. Without the codec the worker is `bench.variant_worker nocodec` and the bench client that starts
the journeys has no codec either; `workflow_input_encoding` shows what Temporal really stored.
"""

from __future__ import annotations

import os
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench.infra import dev_server, gateway
from bench.phases import burst, memory, simulate

VARIANTS = ("nocodec", "codec")


async def measure(
    n: int, scenarios: int, workdir: Path, variants: str = "", workers: int = 1, lead: float | None = None
) -> dict[str, Any]:
    """`variants`: other `bench.variant_worker` patches, applied to both runs."""
    result: dict[str, Any] = {"n": n, "server": "memory", "scenarios": scenarios, "burst": {}, "simulate": {}}
    result["load_average_before"] = [round(x, 2) for x in os.getloadavg()]
    result["per_payload"] = per_payload()
    for name in VARIANTS:
        patches = ",".join(p for p in (variants, "nocodec" if name == "nocodec" else "") if p)
        print(f"[codec] burst of {n}, {'without' if name == 'nocodec' else 'with'} the codec …", flush=True)
        async with dev_server("memory", workdir) as server:
            with gateway(workdir) as gw:
                part = await burst.measure(server, n, workdir, gw, False, lead, patches, workers)
        result["burst"][name] = part
        print(
            f"  drain {part['drain_journeys_per_s']} journeys/s, lateness p50/p99 "
            f"{part['send_lateness_s']['p50']}/{part['send_lateness_s']['p99']} s, "
            f"input stored as {part['workflow_input_encoding']}",
            flush=True,
        )
    if scenarios:
        for name in VARIANTS:
            print(f"[codec] simulate 1 and {scenarios}, {name} …", flush=True)
            result["simulate"][name] = simulate.measure(workdir, scenarios, codec=name == "codec")
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    result["cost"] = cost(result)
    return result


def per_payload(rounds: int = 5000) -> dict[str, Any]:
    """The codec alone, in this process: CPU µs to encrypt and to decrypt one journey input (the largest
    payload: policy, client, agent, window) and one short string, and the bytes each one grows by.
    CPU time (`process_time`), so other processes' load barely moves it."""
    from temporalio.contrib.pydantic import pydantic_data_converter

    from renewals.encryption import EncryptionCodec, Keyring
    from renewals.journey_api import JourneyInput

    codec = EncryptionCodec(Keyring.generate("bench"))
    values = {
        "journey_input": JourneyInput(policy=memory.sleeping_policy(0, date.today() + timedelta(days=40))),
        "short_string": "sms",
    }
    out: dict[str, Any] = {}
    for name, value in values.items():
        payload = pydantic_data_converter.payload_converter.to_payloads([value])[0]
        t0 = time.process_time()
        for _ in range(rounds):
            sealed = codec.encrypt(payload)
        t1 = time.process_time()
        for _ in range(rounds):
            codec.decrypt(sealed)
        t2 = time.process_time()
        out[name] = {
            "plain_bytes": payload.ByteSize(),
            "encrypted_bytes": sealed.ByteSize(),
            "encrypt_us": round(1e6 * (t1 - t0) / rounds, 1),
            "decrypt_us": round(1e6 * (t2 - t1) / rounds, 1),
        }
    return out


def cost(result: dict[str, Any]) -> dict[str, Any]:
    """With the codec relative to without: drain rate ratio, added lateness, added simulate time."""
    out: dict[str, Any] = {}
    off, on = result["burst"].get("nocodec"), result["burst"].get("codec")
    if off and on:
        out["drain_ratio_codec_to_plain"] = _ratio(on["drain_journeys_per_s"], off["drain_journeys_per_s"])
        out["send_lateness_added_s"] = {
            q: _diff(on["send_lateness_s"][q], off["send_lateness_s"][q]) for q in ("p50", "p99", "max")
        }
        cpu_on, cpu_off = on["cpu_during_drain"], off["cpu_during_drain"]
        out["worker_cpu_ms_per_journey"] = {
            name: round(10 * c["worker_cpu_pct"] * c["seconds"] / result["n"], 1)
            for name, c in (("nocodec", cpu_off), ("codec", cpu_on))
            if "worker_cpu_pct" in c
        }
    sim_off, sim_on = result["simulate"].get("nocodec"), result["simulate"].get("codec")
    if sim_off and sim_on:
        out["simulate_per_journey_added_s"] = _diff(sim_on["per_journey_s"], sim_off["per_journey_s"])
        key = f"scenarios_{result['scenarios']}"
        out["simulate_ratio_codec_to_plain"] = _ratio(sim_on[key]["seconds"], sim_off[key]["seconds"])
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def _diff(a: float | None, b: float | None) -> float | None:
    return round(a - b, 3) if a is not None and b is not None else None
