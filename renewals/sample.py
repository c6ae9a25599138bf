"""A sample portfolio for the development stack: one policy per row of the rules, expiring soon.

Dates are relative to `today`, so the stack always shows journeys with touchpoints still ahead.
"""

from __future__ import annotations

from datetime import date, timedelta

from renewals.models import Agent, Bank, Client, Line, Policy, Product, RegionalCentre

MOSCOW = RegionalCentre(id="msk", name="Москва", phone="+74957770000")
NOVOSIBIRSK = RegionalCentre(id="nsk", name="Новосибирск", phone="+73832220000")

AGENTS = [
    Agent(id="A-100", name="Петрова Анна", phone="+79031112233",
          renewal_rates={Line.KASKO: 0.62, Line.OSAGO: 0.70, Line.IFL: 0.55}),
    Agent(id="A-200", name="Сидоров Пётр", phone="+79035556677",
          renewal_rates={Line.KASKO: 0.81, Line.OSAGO: 0.78, Line.IFL: 0.83}),
]  # fmt: skip

_CLIENTS = [
    ("Иванов", "Иван", "Петрович", "+79161234567", "Europe/Moscow"),
    ("Смирнова", "Ольга", "Игоревна", "+79165550011", "Europe/Moscow"),
    ("Кузнецов", "Алексей", None, "+79135550022", "Asia/Novosibirsk"),
    ("Попова", "Мария", "Сергеевна", "+79145550033", "Asia/Vladivostok"),
]

# (product, code, bank, first year, renewal centre, days until the last day of cover, agent)
_ROWS = [
    (Product.KASKO, None, None, False, False, 50, 0),
    (Product.KASKO_OSAGO, None, None, False, False, 47, 1),
    (Product.OSAGO, None, None, True, False, 33, 0),
    (Product.OSAGO, None, None, False, False, 12, 0),
    (Product.IFL, "305", None, False, False, 35, 0),
    (Product.IFL, "354", None, False, False, 31, 1),
    (Product.MORTGAGE, None, Bank.SBER, False, False, 49, 0),
    (Product.MORTGAGE, None, Bank.OTHER, False, False, 34, 0),
    (Product.KASKO, None, None, False, True, 32, 0),
    (Product.OSAGO, None, None, False, True, 25, 1),
    (Product.KASKO_OSAGO, None, None, False, True, 18, 0),
]


def sample_portfolio(today: date) -> list[Policy]:
    policies = []
    for index, (product, code, bank, first_year, centre, days, agent) in enumerate(_ROWS):
        last, first, patronymic, phone, tz = _CLIENTS[index % len(_CLIENTS)]
        policies.append(
            Policy(
                number=f"DEMO-{product.value}-{index + 1:03d}",
                product=product,
                product_code=code,
                bank=bank,
                expires_on=today + timedelta(days=days),
                first_prolongation_year=first_year,
                renewal_centre=centre,
                client=Client(
                    last_name=last,
                    first_name=first,
                    patronymic=patronymic,
                    phone=phone,
                    email=f"client{index + 1}@example.org",
                    vk_id=str(100000 + index),
                    timezone=tz,
                ),
                agent=AGENTS[agent],
                regional_centre=NOVOSIBIRSK if tz == "Asia/Novosibirsk" else MOSCOW,
            )
        )
    return policies
