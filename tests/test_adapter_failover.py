"""FailoverProvider: switches on provider outages only, and never sends one message twice."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from fake_providers import FaultConfig, Gateway
from renewals.activity_io import SendRequest
from renewals.channels.base import Delivery, PermanentSendError, SingleProvider
from renewals.channels.errors import ChannelPaused, ProviderUnavailable, RateLimited
from renewals.channels.factory import sms_provider
from renewals.channels.failover import AllProvidersFailed, FailoverProvider, InMemoryLedger
from renewals.channels.smsc import SmscConfig, SmscProvider
from renewals.db.database import Database
from renewals.outbox import Outbox, OutboxLedger
from tests.test_gateway_helpers import asgi_client, send_request


class Fake(SingleProvider):
    """A provider that plays a script: each call takes the next step (an exception or success)."""

    def __init__(self, name: str, *steps: Exception | None, has: str | None = None) -> None:
        self.name = name
        self.steps = list(steps)
        self.sent: list[str] = []
        self.calls = 0
        self.has = has

    async def send(self, request: SendRequest) -> str:
        self.calls += 1
        step = self.steps.pop(0) if self.steps else None
        if step is not None:
            raise step
        self.sent.append(request.dedup_key)
        return f"{self.name}-1"


class ReconcilableFake(Fake):
    reconciles = True

    async def lookup(self, request: SendRequest) -> str | None:
        return self.has


async def _sent(provider: FailoverProvider, request: SendRequest) -> str:
    """The message id the chain delivered under."""
    return (await provider.deliver(request)).message_id


DOWN = ProviderUnavailable("503", provider="x")
LOST = ProviderUnavailable("read timeout", provider="x", maybe_accepted=True)
BROKE = ProviderUnavailable("500", provider="x", maybe_accepted=True, answered=True)
NO_FUNDS = ChannelPaused("InsufficientFunds", "no money", "x")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    "outage",
    [DOWN, ChannelPaused("InsufficientFunds", "no money"), ChannelPaused("AuthFailed", "bad login")],
)
async def test_switches_on_provider_outage(outage: Exception) -> None:
    primary, backup = Fake("primary", outage), Fake("backup")
    ledger = InMemoryLedger()
    failover = FailoverProvider([primary, backup], ledger)
    request = send_request()
    assert await failover.deliver(request) == Delivery(provider="backup", message_id="backup-1")
    assert (primary.sent, backup.sent) == ([], [request.dedup_key])
    assert await ledger.pinned(request.dedup_key) == "backup"
    # The retry (say the worker crashed before recording) goes to the backup only: no resend.
    assert await _sent(failover, request) == "backup-1"
    assert primary.calls == 1 and backup.sent == [request.dedup_key] * 2  # backup dedups on the key


@pytest.mark.parametrize(
    "error",
    [
        PermanentSendError("InvalidPhone", "bad"),
        PermanentSendError("StopListed", "stop"),
        RateLimited("slow"),
    ],
)
async def test_never_switches_on_recipient_errors_or_rate_limits(error: Exception) -> None:
    primary, backup = Fake("primary", error), Fake("backup")
    ledger = InMemoryLedger()
    with pytest.raises(type(error)):
        await _sent(FailoverProvider([primary, backup], ledger), send_request())
    assert backup.calls == 0
    assert await ledger.pinned(send_request().dedup_key) is None


async def test_ambiguous_failure_pins_the_provider_and_the_retry_goes_back_to_it() -> None:
    primary, backup = Fake("primary", LOST, DOWN), Fake("backup")
    failover = FailoverProvider([primary, backup])
    with pytest.raises(ProviderUnavailable) as first:
        await _sent(failover, send_request())
    assert first.value.maybe_accepted and backup.calls == 0
    with pytest.raises(ProviderUnavailable):  # primary now down for good, but it may hold the message
        await _sent(failover, send_request())
    assert backup.calls == 0
    assert await _sent(failover, send_request()) == "primary-1"  # primary back: it answers (and dedups)
    assert backup.calls == 0


async def test_pin_after_crash_reconciles_before_switching() -> None:
    request = send_request()
    empty = ReconcilableFake("primary", DOWN, has=None)
    backup = Fake("backup")
    assert (
        await FailoverProvider([empty, backup]).deliver(request, accepted_by="primary")
    ).provider == "backup"

    holding = ReconcilableFake("primary", DOWN, has="primary-earlier")
    backup = Fake("backup")
    delivery = await FailoverProvider([holding, backup]).deliver(request, accepted_by="primary")
    assert delivery == Delivery(provider="primary", message_id="primary-earlier") and backup.calls == 0


async def test_pin_without_reconciliation_waits_for_the_pinned_provider() -> None:
    primary, backup = Fake("primary", DOWN), Fake("backup")
    ledger = InMemoryLedger()
    await ledger.pin(send_request().dedup_key, "primary")  # what a crash mid-send leaves behind
    with pytest.raises(ProviderUnavailable):
        await _sent(FailoverProvider([primary, backup], ledger), send_request())
    assert backup.calls == 0 and await ledger.pinned(send_request().dedup_key) == "primary"


async def test_accepted_by_only_reconciles_with_that_provider() -> None:
    primary, backup = Fake("primary"), Fake("backup")
    delivery = await FailoverProvider([primary, backup]).deliver(send_request(), accepted_by="backup")
    assert delivery.provider == "backup" and primary.calls == 0


async def test_all_down_is_transient() -> None:
    with pytest.raises(AllProvidersFailed) as caught:
        await _sent(FailoverProvider([Fake("a", DOWN), Fake("b", DOWN)]), send_request())
    assert not caught.value.maybe_accepted


def test_configuration_is_checked() -> None:
    with pytest.raises(ValueError):
        FailoverProvider([])
    with pytest.raises(ValueError):
        FailoverProvider([Fake("a"), Fake("a")])


async def test_real_adapters_over_two_gateways() -> None:
    """SMSC primary has an outage (503), the backup gateway takes the message; then the primary
    recovers and the retry of the same key still goes nowhere new."""
    primary_gw, backup_gw = Gateway(), Gateway()
    primary_gw.configure_faults(FaultConfig(error_rate=1.0))

    def smsc(gateway: Gateway, name: str) -> SmscProvider:
        return SmscProvider(
            SmscConfig(base_url="http://gw", login="l", password="p"), asgi_client(gateway), name
        )

    failover = FailoverProvider([smsc(primary_gw, "smsc"), smsc(backup_gw, "smsc-backup")])
    request = send_request()
    first = await failover.deliver(request)
    assert first.provider == "smsc-backup"
    primary_gw.configure_faults(FaultConfig())
    retry = request.model_copy(update={"resumed": True})  # the activity's retry (row pending)
    assert await failover.deliver(retry) == first
    assert primary_gw.log.records() == [] and len(backup_gw.log.records("sms")) == 1


async def test_connect_error_switches_read_timeout_does_not() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    def lost(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/sys/status.php":
            return httpx.Response(200, json={"error": "not found", "error_code": 3})
        raise httpx.ReadTimeout("lost")

    backup_gw = Gateway()
    config = SmscConfig(base_url="http://gw", login="l", password="p")
    backup = SmscProvider(config, asgi_client(backup_gw), "backup")
    ok = await FailoverProvider(
        [SmscProvider(config, httpx.AsyncClient(transport=httpx.MockTransport(refused))), backup]
    ).deliver(send_request())
    assert ok.provider == "backup"
    with pytest.raises(ProviderUnavailable):
        await FailoverProvider(
            [SmscProvider(config, httpx.AsyncClient(transport=httpx.MockTransport(lost))), backup]
        ).deliver(send_request(touchpoint="d-5-sms"))
    assert len(backup_gw.log.records("sms")) == 1


async def test_a_paused_provider_alerts_is_skipped_then_probed_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    primary, backup = Fake("primary", NO_FUNDS), Fake("backup")
    failover = FailoverProvider([primary, backup], pause_seconds=60, clock=clock)
    with caplog.at_level(logging.ERROR, logger="renewals.channels.failover"):
        assert (await failover.deliver(send_request())).provider == "backup"
    alerts = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ALERT")]
    assert len(alerts) == 1 and "primary" in alerts[0] and "InsufficientFunds" in alerts[0]
    assert failover.paused("primary") and not failover.paused("backup")
    assert (await failover.deliver(send_request(touchpoint="d-5-sms"))).provider == "backup"
    assert primary.calls == 1  # skipped while paused
    clock.now += 61
    assert (await failover.deliver(send_request(touchpoint="d-4-sms"))).provider == "primary"


async def test_every_provider_refusing_us_pauses_the_channel() -> None:
    """Not a transient 'all failed': the activity must pause the channel and alert, not retry."""
    auth = ChannelPaused("AuthFailed", "bad login", "y")
    failover = FailoverProvider([Fake("a", NO_FUNDS, NO_FUNDS), Fake("b", auth, auth)])
    with pytest.raises(ChannelPaused) as caught:
        await failover.deliver(send_request())
    assert caught.value.error_type == "AuthFailed" and caught.value.provider == failover.name
    with pytest.raises(ChannelPaused):  # both paused: both probed again, both still refuse
        await failover.deliver(send_request(touchpoint="d-5-sms"))
    mixed = FailoverProvider([Fake("a", NO_FUNDS), Fake("b", DOWN)])
    with pytest.raises(AllProvidersFailed):  # one is only down: transient
        await mixed.deliver(send_request())


@pytest.mark.parametrize(("has", "provider"), [("primary-earlier", "primary"), (None, "backup")])
async def test_an_answered_5xx_is_looked_up_before_switching(has: str | None, provider: str) -> None:
    primary, backup = ReconcilableFake("primary", BROKE, has=has), Fake("backup")
    ledger = InMemoryLedger()
    delivery = await FailoverProvider([primary, backup], ledger).deliver(send_request())
    assert delivery.provider == provider and backup.calls == (provider == "backup")
    assert await ledger.pinned(send_request().dedup_key) == provider


async def test_an_answered_5xx_without_a_lookup_keeps_the_pin() -> None:
    primary, backup = Fake("primary", BROKE), Fake("backup")
    ledger = InMemoryLedger()
    with pytest.raises(ProviderUnavailable):
        await FailoverProvider([primary, backup], ledger).deliver(send_request())
    assert backup.calls == 0 and await ledger.pinned(send_request().dedup_key) == "primary"


async def test_a_failed_lookup_keeps_the_pin() -> None:
    class Blind(ReconcilableFake):
        async def lookup(self, request: SendRequest) -> str | None:
            raise DOWN

    backup = Fake("backup")
    ledger = InMemoryLedger()
    with pytest.raises(ProviderUnavailable) as caught:
        await FailoverProvider([Blind("primary", BROKE), backup], ledger).deliver(send_request())
    assert caught.value.maybe_accepted and backup.calls == 0
    assert await ledger.pinned(send_request().dedup_key) == "primary"


async def test_real_smsc_500_switches_only_after_the_status_query_says_no() -> None:
    def broken(has: bool) -> httpx.AsyncClient:
        def handler(request: httpx.Request) -> httpx.Response:
            if request.url.path == "/sys/status.php":
                if has:
                    return httpx.Response(200, json={"status": 1, "err": 0})
                return httpx.Response(200, json={"error": "not found", "error_code": 3})
            return httpx.Response(500, text="Internal Server Error")

        return httpx.AsyncClient(transport=httpx.MockTransport(handler))

    config = SmscConfig(base_url="http://gw", login="l", password="p")
    for has, expected in [(True, "smsc"), (False, "smsc-backup")]:
        backup_gw = Gateway()
        backup = SmscProvider(config, asgi_client(backup_gw), "smsc-backup")
        delivery = await FailoverProvider([SmscProvider(config, broken(has)), backup]).deliver(send_request())
        assert delivery.provider == expected
        assert len(backup_gw.log.records("sms")) == (expected == "smsc-backup")


async def test_an_ordered_list_of_three() -> None:
    a, b, c = Fake("a", DOWN), Fake("b", NO_FUNDS), Fake("c")
    ledger = InMemoryLedger()
    assert (await FailoverProvider([a, b, c], ledger).deliver(send_request())).provider == "c"
    assert (a.calls, b.calls, c.calls) == (1, 1, 1)
    assert await ledger.pinned(send_request().dedup_key) == "c"


def test_factory_builds_the_ordered_list(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/f.db")
    config = SmscConfig(base_url="http://gw", login="l", password="p")
    assert isinstance(sms_provider([config], db), SmscProvider)
    chain = sms_provider([config] * 3, db, pause_seconds=120)
    assert isinstance(chain, FailoverProvider) and isinstance(chain.ledger, OutboxLedger)
    assert [p.name for p in chain.providers] == ["smsc", "smsc-backup", "smsc-backup-2"]
    assert chain.pause_seconds == 120


async def test_outbox_ledger_pins_survive_a_new_process(tmp_path: Path) -> None:
    """The pin is the outbox row's `provider`: a fresh engine (another worker, a restart) sees it."""
    url = f"sqlite+aiosqlite:///{tmp_path}/ledger.db"
    request = send_request()
    first = Database(url)
    await first.migrate()
    await Outbox(first).claim(request)
    await OutboxLedger(first).pin(request.dedup_key, "smsc")
    await first.dispose()

    second = Database(url)
    ledger = OutboxLedger(second)
    assert await ledger.pinned(request.dedup_key) == "smsc"
    assert (await Outbox(second).claim(request)).provider == "smsc"  # what `accepted_by` is fed
    await ledger.release(request.dedup_key, "smsc-backup")  # names another provider: no effect
    assert await ledger.pinned(request.dedup_key) == "smsc"
    await ledger.release(request.dedup_key, "smsc")
    assert await ledger.pinned(request.dedup_key) is None
    await ledger.pin(request.dedup_key, "smsc-backup")
    await Outbox(second).mark(request.dedup_key, "sent", provider="smsc-backup", provider_message_id="1")
    await ledger.pin(request.dedup_key, "smsc")  # a settled row is not re-pinned
    assert await ledger.pinned(request.dedup_key) == "smsc-backup"
    assert await ledger.pinned("no-such-key") is None
    await second.dispose()
