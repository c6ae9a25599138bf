"""The domain's data: policies, their clients, agents and regional renewal centres.

These pydantic models are the single shape used by intake, the database layer, the workflow input
and the simulation contract, so a policy means the same thing everywhere.
"""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from renewals.calendar_years import CALENDAR_YEARS
from renewals.phones import to_e164
from renewals.sendwindow import TimeZoneName


class Product(StrEnum):
    """Insurance lines taking part in the informing programme."""

    KASKO = "KASKO"
    KASKO_OSAGO = "KASKO_OSAGO"
    OSAGO = "OSAGO"  # «свободное ОСАГО»: standalone, without КАСКО
    IFL = "IFL"  # property insurance of individuals; the product code selects the programme
    MORTGAGE = "MORTGAGE"


class Bank(StrEnum):
    """The mortgage lender matters: Сбер clients are informed at −45, other banks' at −30."""

    SBER = "SBER"
    OTHER = "OTHER"


# What a bank's name says besides who it is: legal forms, the country, punctuation. «ПАО Сбербанк»,
# «Сбербанк России», 'ПАО "Сбербанк"', "Sberbank of Russia" and «Сбер Банк» are all Сбер.
_ORG_WORDS = frozenset(
    {
        "пао",
        "оао",
        "зао",
        "ао",
        "публичное",
        "акционерное",
        "общество",
        "pjsc",
        "ojsc",
        "pao",
        "россии",
        "of",
        "russia",
    }
)
_SBER_CORE = frozenset({"сбер", "сбербанк", "sber", "sberbank"})
_NOT_A_LETTER = re.compile(r"[^0-9a-zа-яё]+")


def bank_of(name: str) -> Bank:
    """The rules' kind of a mortgage's bank from its name as a portfolio gives it: Сбер by its usual
    spellings (any case, «ПАО», «России», quotes, brackets, Latin), every other bank `OTHER`. The whole
    name must be Сбер's: «Сбербанк Лизинг» or «Сбер Страхование» are other companies."""
    words = [word for word in _NOT_A_LETTER.split(name.casefold()) if word and word not in _ORG_WORDS]
    return Bank.SBER if "".join(words) in _SBER_CORE else Bank.OTHER


class Line(StrEnum):
    """Lines of business the agent-performance norms are stated for."""

    KASKO = "KASKO"
    OSAGO = "OSAGO"
    IFL = "IFL"


class Channel(StrEnum):
    SMS = "sms"
    EMAIL = "email"
    VK = "vk"
    ROBOT_CALL = "robot_call"
    OPERATOR_TASK = "operator_task"


class _Model(BaseModel):
    # hide_input_in_errors: a ValidationError's text (in a log, a traceback, a terminal) never quotes
    # the input — a client's name, phone or e-mail; `errors()` still has it for code that needs it.
    model_config = ConfigDict(
        frozen=True, extra="forbid", str_strip_whitespace=True, hide_input_in_errors=True
    )


# A phone that goes into a client text (an agent's, a centre's): must be a real number; kept in E.164.
CompanyPhone = Annotated[str, Field(min_length=1), AfterValidator(to_e164)]


class Client(_Model):
    last_name: str = Field(min_length=1)
    first_name: str = Field(min_length=1)
    patronymic: str | None = None
    phone: str = Field(min_length=1)
    email: str | None = None
    vk_id: str | None = None
    timezone: TimeZoneName = "Europe/Moscow"

    @field_validator("patronymic")
    @classmethod
    def _no_empty_patronymic(cls, value: str | None) -> str | None:
        return value or None

    @property
    def io(self) -> str:
        """ИО: имя + отчество, or the first name alone when there is no patronymic."""
        return f"{self.first_name} {self.patronymic}" if self.patronymic else self.first_name


class Agent(_Model):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    phone: CompanyPhone
    renewal_rates: dict[Line, float] = Field(default_factory=dict)

    @field_validator("renewal_rates")
    @classmethod
    def _rates_are_fractions(cls, value: dict[Line, float]) -> dict[Line, float]:
        for line, rate in value.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"renewal rate for {line} must be a fraction 0..1, got {rate}")
        return value


class RegionalCentre(_Model):
    """A regional centre with its Центр Возобновления (renewal centre) and its own phone."""

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    phone: CompanyPhone


_SPACES = re.compile(r"\s+")


class Policy(_Model):
    number: str = Field(min_length=1)
    product: Product
    product_code: str | None = None
    bank: Bank | None = None  # what the rules need: Сбер or another bank (derived from a name)
    bank_name: str | None = Field(default=None, max_length=200)  # the bank as the portfolio names it
    expires_on: date  # the last day of cover
    first_prolongation_year: bool = False
    renewal_centre: bool = False  # the client is supported by a renewal centre
    client: Client
    agent: Agent
    regional_centre: RegionalCentre | None = None

    @model_validator(mode="before")
    @classmethod
    def _bank_by_name(cls, data: Any) -> Any:
        """`bank` may be a bank's name («ВТБ», «ПАО Сбербанк»): its kind goes to `bank`, the name as
        given to `bank_name`. The codes SBER and OTHER stay codes (and keep a `bank_name` given beside
        them, as a stored policy or a Temporal payload has it)."""
        if not isinstance(data, dict) or not isinstance(data.get("bank"), str):
            return data
        given = data["bank"].strip()
        if not given or given in Bank.__members__:
            return data
        return {**data, "bank": bank_of(given), "bank_name": data.get("bank_name") or given}

    @model_validator(mode="after")
    def _product_details(self) -> Policy:
        if self.product is Product.MORTGAGE and self.bank is None:
            raise ValueError("bank: a MORTGAGE policy needs its bank (its name, e.g. «ПАО Сбербанк», «ВТБ»)")
        if self.product is Product.IFL and not self.product_code:
            raise ValueError("product_code: an IFL policy needs its product code (e.g. 305, 354)")
        if self.renewal_centre and self.regional_centre is None:
            raise ValueError("regional_centre: a renewal-centre client needs its regional centre")
        if not CALENDAR_YEARS.start < self.expires_on.year < CALENDAR_YEARS.stop - 1:
            raise ValueError(
                f"expires_on: {self.expires_on} is outside the production calendar's years "
                f"({CALENDAR_YEARS.start}–{CALENDAR_YEARS.stop - 1})"
            )
        return self


# Latin and Cyrillic capitals that look the same. An ОСАГО series (the RSA format «ХХХ 0123456789»)
# is Cyrillic; every other number shape (`7100K/046/000101/26`) is written in Latin letters.
_CYRILLIC = "АВЕКМНОРСТУХ"
_LATIN = "ABEKMHOPCTYX"
_TO_CYRILLIC = str.maketrans(_LATIN, _CYRILLIC)
_TO_LATIN = str.maketrans(_CYRILLIC, _LATIN)
_OSAGO = re.compile(r"^([A-ZА-ЯЁ]{3})[ /]?(\d{10})$")
_AROUND_SLASH = re.compile(r"\s*/\s*")


def normal_policy_number(raw: str) -> str:
    """The one normal form of a policy number: the database key, the duplicate check's key and (through
    `journey_id`) the journey id. Upper case, spaces collapsed, none around slashes; look-alike letters
    in one script: Cyrillic in an ОСАГО series (`XXX0123456789`, `ХХХ/0123456789` → `ХХХ 0123456789`),
    Latin elsewhere. A number already in normal form is returned unchanged."""
    text = _AROUND_SLASH.sub("/", _SPACES.sub(" ", raw.strip().upper()))
    osago = _OSAGO.match(text)
    if osago:
        return f"{osago.group(1).translate(_TO_CYRILLIC)} {osago.group(2)}"
    return text.translate(_TO_LATIN)


def journey_id(policy_number: str, expires_on: date) -> str:
    """One journey per policy term: a duplicate start finds the same id and never a second journey.
    The number goes in normalised (`normal_policy_number`), without spaces or slashes."""
    normalised = _SPACES.sub("", normal_policy_number(policy_number)).replace("/", "-")
    return f"renewal-{normalised}-{expires_on:%Y%m%d}"


def channel_queue(task_queue: str, channel: Channel) -> str:
    """The task queue a channel's sends run on: one per channel, so a provider's rate limit
    (`max_task_queue_activities_per_second`) holds across every worker."""
    return f"{task_queue}-{channel.value}"
