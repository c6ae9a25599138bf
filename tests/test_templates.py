"""Every client text word for word as the seed has it, filled; the NDA guard refuses what it forbids."""

from __future__ import annotations

import pytest

from renewals.templates import TEMPLATES, MissingTemplateData, NdaViolation, check_nda, render
from tests.factories import policy

IO = "Иван Петрович"
AGENT = "+7 903 111-22-33"
CENTRE = "+7 495 777-00-00"

EXPECTED = {
    ("base_kasko_45", "KASKO"): f"{IO}, Ваш полис КАСКО заканчивается 20.04.27. Продлите полис у своего "
    f"агента и оставайтесь с нами. Тел. {AGENT}",
    ("base_kasko_5", "KASKO"): f"{IO}, Ваш полис КАСКО заканчивается 20.04.27. Продлить его Вы можете у "
    f"своего Агента (тел. {AGENT}) или позвонив в АО «АльфаСтрахование» (тел. *0999)",
    ("base_osago_30", "OSAGO"): f"{IO}, Ваш полис ОСАГО № ХХХ 0123456789 заканчивается 20.04.27. "
    f"Продлить его Вы можете у своего Агента. Тел. {AGENT}",
    ("base_osago_5", "OSAGO"): f"{IO}, Ваш полис ОСАГО № ХХХ 0123456789 заканчивается 20.04.27. Продлить "
    "его Вы можете у своего агента или позвонив в АО «АльфаСтрахование» (тел. *0999)",
    ("base_ifl_30", "IFL"): f"{IO}, Ваш полис страхования имущества № ХХХ 0123456789 заканчивается "
    f"20.04.27. Продлить его Вы можете у своего Агента. Тел. {AGENT}",
    ("base_mortgage_30", "MORTGAGE"): f"{IO}, Ваш полис ипотечного страхования № ХХХ 0123456789 "
    f"заканчивается 20.04.27. Продлить его Вы можете у своего Агента Тел. {AGENT}",
    ("base_mortgage_sber_45", "MORTGAGE"): f"{IO}, Ваш полис ипотечного страхования № ХХХ 0123456789 "
    f"заканчивается 20.04.27. Продлить его Вы можете у своего Агента. Тел. {AGENT}",
    ("base_mortgage_5", "MORTGAGE"): f"{IO}, Ваш полис ипотечного страхования заканчивается 20.04.27. "
    f"Продлить его Вы можете у своего Агента (Тел. {AGENT}) или позвонив в АО «АльфаСтрахование» "
    "(тел. *0999)",
    ("centre_sms_30", "OSAGO"): f"{IO}, Ваш полис ОСАГО заканчивается 20.04.27. Продлите его у Вашего "
    f"Агента (Тел. {AGENT}) или позвоните в АльфаСтрахование (тел. {CENTRE}).",
    ("centre_sms_5", "KASKO"): f"{IO}, Ваш полис КАСКО заканчивается 20.04.27. Продлите его, позвонив в "
    f"АльфаСтрахование (тел. {CENTRE}).",
}


@pytest.mark.parametrize(("template", "product"), list(EXPECTED))
def test_sms_texts_are_the_seeds_word_for_word(template: str, product: str) -> None:
    p = policy(product=product, product_code="305", bank="OTHER", renewal_centre=True)
    assert render(template, p).text == EXPECTED[(template, product)]


def test_io_is_the_first_name_alone_without_a_patronymic() -> None:
    p = policy(product="KASKO", client={"patronymic": None})
    assert render("base_kasko_45", p).text.startswith("Иван, Ваш полис КАСКО")


def test_minus_5_kasko_names_the_real_product_not_the_seeds_copy_error() -> None:
    assert "ОСАГО" not in render("base_kasko_5", policy(product="KASKO")).text


def test_every_client_template_renders_without_links_or_offices() -> None:
    p = policy(product="KASKO", renewal_centre=True)
    for name, template in TEMPLATES.items():
        message = render(name, p, reason="проверка")
        assert "{" not in message.text
        if template.client_facing:
            check_nda(name, message.text)  # raises on a violation
    assert render("centre_email_30", p).subject == "Ваш полис КАСКО заканчивается 20.04.27"


@pytest.mark.parametrize(
    "text",
    [
        "Продлите на https://alfastrah.ru сегодня",
        "Зайдите на www.example.com",
        "Сайт alfastrah.ru",
        "Пишите на help@alfastrah.ru",
        "Приходите в наш офис на Тверской",
        "Наш сайт альфа.рф",
    ],
)
def test_nda_guard_refuses_links_sites_emails_and_offices(text: str) -> None:
    with pytest.raises(NdaViolation, match="NDA"):
        check_nda("t", text)


def test_nda_guard_leaves_short_number_dates_and_company_name_alone() -> None:
    check_nda("t", "ИО, полис заканчивается 20.04.27. Звоните в АО «АльфаСтрахование» (тел. *0999).")


def test_render_refuses_a_template_without_its_data() -> None:
    with pytest.raises(MissingTemplateData, match="centre_phone"):
        render("centre_sms_5", policy(product="KASKO", regional_centre=None))
