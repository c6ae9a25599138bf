"""Client texts, word for word from the seed, and the NDA guard every rendering passes through.

The SMS texts are the seed's table with its placeholders filled: «ИО» is имя + отчество, «ДД.ММ.ГГ»
the last day of cover, «XXX/…» the policy number, «Тел. Агента» the agent's phone. Two deliberate
departures, both from the issue that specifies this module: the −5 КАСКО row, which the seed prints
with «ОСАГО» by a copy error, names the policy's real product; e-mail and VK texts, which the seed
shows only as pictures, are written here in the same voice.

Client texts are legal documents under the agent NDA: no links, no sites, no e-mail addresses and no
office contacts. `render` refuses a text that breaks it rather than let it reach a client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from renewals.models import Channel, Policy, Product
from renewals.phones import for_reading
from renewals.privacy import mask_email

PRODUCT_NAMES: dict[Product, str] = {
    Product.KASKO: "КАСКО",
    Product.KASKO_OSAGO: "КАСКО",  # the seed's −45 row names КАСКО for «КАСКО + ОСАГО» too
    Product.OSAGO: "ОСАГО",
    Product.IFL: "страхования имущества",
    Product.MORTGAGE: "ипотечного страхования",
}


@dataclass(frozen=True)
class Template:
    channel: Channel
    text: str
    subject: str | None = None  # e-mail only
    client_facing: bool = True  # operator tasks are internal and may name the client in full


TEMPLATES: dict[str, Template] = {
    # Base informing: «Какие SMS и как часто будут отправляться?»
    "base_kasko_45": Template(
        Channel.SMS,
        "{io}, Ваш полис {product} заканчивается {expires}. "
        "Продлите полис у своего агента и оставайтесь с нами. Тел. {agent_phone}",
    ),
    "base_kasko_5": Template(
        Channel.SMS,
        "{io}, Ваш полис {product} заканчивается {expires}. Продлить его Вы можете у своего Агента "
        "(тел. {agent_phone}) или позвонив в АО «АльфаСтрахование» (тел. *0999)",
    ),
    "base_osago_30": Template(
        Channel.SMS,
        "{io}, Ваш полис ОСАГО № {number} заканчивается {expires}. "
        "Продлить его Вы можете у своего Агента. Тел. {agent_phone}",
    ),
    "base_osago_5": Template(
        Channel.SMS,
        "{io}, Ваш полис ОСАГО № {number} заканчивается {expires}. Продлить его Вы можете у своего "
        "агента или позвонив в АО «АльфаСтрахование» (тел. *0999)",
    ),
    "base_ifl_30": Template(
        Channel.SMS,
        "{io}, Ваш полис страхования имущества № {number} заканчивается {expires}. "
        "Продлить его Вы можете у своего Агента. Тел. {agent_phone}",
    ),
    "base_mortgage_30": Template(
        Channel.SMS,
        # The seed has no full stop before «Тел.» in this row; the text is kept as the seed has it.
        "{io}, Ваш полис ипотечного страхования № {number} заканчивается {expires}. "
        "Продлить его Вы можете у своего Агента Тел. {agent_phone}",
    ),
    "base_mortgage_sber_45": Template(
        Channel.SMS,
        "{io}, Ваш полис ипотечного страхования № {number} заканчивается {expires}. "
        "Продлить его Вы можете у своего Агента. Тел. {agent_phone}",
    ),
    "base_mortgage_5": Template(
        Channel.SMS,
        "{io}, Ваш полис ипотечного страхования заканчивается {expires}. Продлить его Вы можете у "
        "своего Агента (Тел. {agent_phone}) или позвонив в АО «АльфаСтрахование» (тел. *0999)",
    ),
    # Renewal-centre journey: «Информирование клиентов агентов при поддержке Центров Возобновления»
    "centre_sms_30": Template(
        Channel.SMS,
        "{io}, Ваш полис {product} заканчивается {expires}. Продлите его у Вашего Агента "
        "(Тел. {agent_phone}) или позвоните в АльфаСтрахование (тел. {centre_phone}).",
    ),
    "centre_email_30": Template(
        Channel.EMAIL,
        "Здравствуйте, {io}!\n\n"
        "Ваш полис {product} № {number} заканчивается {expires}.\n"
        "Продлите его у Вашего Агента ({agent_name}, тел. {agent_phone}) или позвоните "
        "в АльфаСтрахование (тел. {centre_phone}).\n"
        "При продлении сохраняются все данные Вашего договора и Ваш Агент.\n\n"
        "АО «АльфаСтрахование»",
        subject="Ваш полис {product} заканчивается {expires}",
    ),
    "centre_vk_30": Template(
        Channel.VK,
        "{io}, Ваш полис {product} № {number} заканчивается {expires}. Продлите его у Вашего Агента "
        "(Тел. {agent_phone}) или позвоните в АльфаСтрахование (тел. {centre_phone}).",
    ),
    "robot_dasha": Template(
        Channel.ROBOT_CALL,
        "Здравствуйте, {io}! Это Робот Даша, АльфаСтрахование. Ваш полис {product} заканчивается "
        "{expires}. Продлить его можно у Вашего Агента с сохранением всех условий. Хотите продлить?",
    ),
    "centre_email_17": Template(
        Channel.EMAIL,
        "Здравствуйте, {io}!\n\n"
        "Напоминаем: Ваш полис {product} № {number} заканчивается {expires}.\n"
        "Продлите его у Вашего Агента ({agent_name}, тел. {agent_phone}) или позвоните "
        "в АльфаСтрахование (тел. {centre_phone}). Сотрудник Центра Возобновления также "
        "свяжется с Вами.\n\n"
        "АО «АльфаСтрахование»",
        subject="Напоминаем: Ваш полис {product} заканчивается {expires}",
    ),
    "centre_sms_5": Template(
        Channel.SMS,
        "{io}, Ваш полис {product} заканчивается {expires}. Продлите его, позвонив в "
        "АльфаСтрахование (тел. {centre_phone}).",
    ),
    "operator_call": Template(
        Channel.OPERATOR_TASK,
        "Позвонить клиенту {full_name} (тел. {client_phone}): полис {product} № {number} "
        "заканчивается {expires}. Агент {agent_name} (тел. {agent_phone}) сохраняется при продлении. "
        "Причина: {reason}.",
        client_facing=False,
    ),
}

# What the NDA forbids in a client text: links, bare sites, e-mail addresses, office contacts.
_NDA_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a link", re.compile(r"https?://|www\.", re.IGNORECASE)),
    ("an e-mail address", re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")),
    ("a site", re.compile(r"\b[\w-]+\.(?:[a-z]{2,24}|рф|рус|москва)\b", re.IGNORECASE)),
    ("an office", re.compile(r"офис|отделени|филиал|\bул\.|\bпр-т\b|проспект", re.IGNORECASE)),
)


class NdaViolation(ValueError):
    """A client text would route the client to direct sales channels."""


class MissingTemplateData(ValueError):
    """A placeholder has no value for this policy (e.g. no renewal-centre phone)."""


@dataclass(frozen=True)
class RenderedMessage:
    template: str
    channel: Channel
    text: str
    subject: str | None = None


def format_date(value: date) -> str:
    """ДД.ММ.ГГ."""
    return value.strftime("%d.%m.%y")


def check_nda(name: str, text: str) -> None:
    for what, pattern in _NDA_PATTERNS:
        found = pattern.search(text)
        if found:
            # The client's own e-mail may be what it found: never quoted in clear.
            quoted = mask_email(found.group(0)) if "@" in found.group(0) else found.group(0)
            raise NdaViolation(
                f"template {name!r}: client text contains {what} ({quoted!r}), which the agent NDA forbids"
            )


def render(name: str, policy: Policy, reason: str = "") -> RenderedMessage:
    """Fill template `name` for `policy`; client-facing texts must pass the NDA guard."""
    template = TEMPLATES[name]
    client, agent, centre = policy.client, policy.agent, policy.regional_centre
    values = {
        "io": client.io,
        "full_name": " ".join(p for p in (client.last_name, client.first_name, client.patronymic) if p),
        "client_phone": for_reading(client.phone),
        "product": PRODUCT_NAMES[policy.product],
        "number": policy.number,
        "expires": format_date(policy.expires_on),
        "agent_name": agent.name,
        "agent_phone": for_reading(agent.phone),
        "centre_phone": for_reading(centre.phone) if centre else None,
        "reason": reason,
    }
    missing = [k for k, v in values.items() if v is None and "{" + k + "}" in template.text]
    if missing:
        raise MissingTemplateData(f"template {name!r}: no value for {', '.join(missing)}")
    text = template.text.format(**values)
    subject = template.subject.format(**values) if template.subject else None
    if template.client_facing:
        check_nda(name, text)
        if subject:
            check_nda(name, subject)
    return RenderedMessage(name, template.channel, text, subject)
