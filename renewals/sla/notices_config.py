"""Where the partner SLA's notices go: the contacts configuration (`RENEWALS_SLA_CONTACTS`, JSON).

The seed names roles, not addresses: the person responsible for the stage (the agency's internal
SLA — who answers the client, who collects the documents, who takes the payment), the dedicated
urgent line («срочные случаи — отдельный канал с реакцией 10–15 минут») and the partner cabinet
(«понятные статусы в кабинете»). Applications name their responsible people; this maps them to
real destinations:

- `people`: a person's name as applications give it → their e-mail;
- `roles`: a duty (`client_contact`, `documents`, `payment`) → the role's mailbox, for a person
  without an address of their own;
- `duty_email`: the duty operator, when the stage has nobody named or nobody reachable;
- `urgent_phone`: the urgent line's phone, which gets urgent applications' notices by SMS;
- `partner_cabinet`: the cabinet's webhook (URL and the HMAC secret it checks), which gets the
  process-correction flags.

Kept apart from `renewals.sla.notices` so the settings object can hold it without importing the
sending code. Validation names the key and never echoes the address it refused.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from renewals.channels.base import PermanentSendError
from renewals.channels.email import parse_address
from renewals.phones import InvalidPhone, to_e164
from renewals.sla.models import Duty

SANDBOX_SECRET = "sandbox"  # what `channels=gateway` signs with, and the fake cabinet checks
CABINET_PATH = "/partner-cabinet/notices"  # the fake gateway's receiver


def _email(value: str, where: str) -> str:
    try:
        parse_address(value)
    except PermanentSendError:
        raise ValueError(f"{where}: not an e-mail address") from None
    return value.strip()


class PartnerCabinetConfig(BaseModel):
    """The partner cabinet's notice webhook: every POST is signed `X-Signature: sha256=<hex>`
    (HMAC-SHA256 of the raw body with `secret`) and carries `Idempotency-Key`."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    url: str = Field(min_length=1, max_length=2000)
    secret: SecretStr
    timeout_seconds: float = Field(10.0, gt=0, le=120)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value


class SlaContacts(BaseModel):
    """Who receives the SLA's notices (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    people: dict[str, str] = {}
    roles: dict[Duty, str] = {}
    duty_email: str | None = None
    urgent_phone: str | None = None
    partner_cabinet: PartnerCabinetConfig | None = None

    @model_validator(mode="after")
    def _addresses(self) -> Self:
        people = {name.strip(): _email(mail, f"people[{name!r}]") for name, mail in self.people.items()}
        roles = {duty: _email(mail, f"roles[{duty.value!r}]") for duty, mail in self.roles.items()}
        duty = None if self.duty_email is None else _email(self.duty_email, "duty_email")
        phone = None
        if self.urgent_phone is not None:
            try:
                phone = to_e164(self.urgent_phone)
            except InvalidPhone:
                raise ValueError("urgent_phone: not a valid phone number") from None
        object.__setattr__(self, "people", people)
        object.__setattr__(self, "roles", roles)
        object.__setattr__(self, "duty_email", duty)
        object.__setattr__(self, "urgent_phone", phone)
        return self

    def email_for(self, person: str | None, duty: Duty | None) -> str | None:
        """The stage's responsible person's e-mail, else the role's mailbox, else the duty operator's."""
        if person is not None and (own := self.people.get(person.strip())) is not None:
            return own
        if duty is not None and (mailbox := self.roles.get(duty)) is not None:
            return mailbox
        return self.duty_email

    def missing_for_production(self) -> list[str]:
        """What `channels=providers` needs and this configuration lacks: somewhere for every kind of
        notice to go (a responsible person's notice falls back to `duty_email`)."""
        missing = []
        if self.duty_email is None:
            missing.append("duty_email (where a stage's notice goes when nobody reachable is named)")
        if self.urgent_phone is None:
            missing.append("urgent_phone (the urgent line, by SMS)")
        if self.partner_cabinet is None:
            missing.append("partner_cabinet (url and secret: where process-correction flags go)")
        return missing


def sandbox_contacts(gateway_url: str | None) -> SlaContacts:
    """The development stack's destinations: sandbox mailboxes and phone, and the fake gateway's
    cabinet receiver (`gateway_url`; None: no HTTP at all, the cabinet notice is only recorded)."""
    cabinet = (
        None
        if gateway_url is None
        else PartnerCabinetConfig(
            url=gateway_url.rstrip("/") + CABINET_PATH, secret=SecretStr(SANDBOX_SECRET)
        )
    )
    return SlaContacts(
        roles={duty: f"sla-{duty.value.replace('_', '-')}@sandbox.test" for duty in Duty},
        duty_email="sla-duty@sandbox.test",
        urgent_phone="+79990000001",
        partner_cabinet=cabinet,
    )
