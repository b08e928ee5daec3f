"""The programs `autostamp demo` publishes, and the shops where its synthetic feed buys.

They ship with the package, so the demo needs no checkout. Their ids start with `lp_demo_`,
so publishing them never replaces a program of the examples or of the operator. They stamp
at any hour and on any day, so the demo shows rewards whenever it runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rules import ProgramDefinition

_IMAGES = "https://cdn.example.com/programs"


@dataclass(frozen=True)
class Shop:
    """The merchants of one demo program, what a purchase there that stamps costs, and
    purchases that just miss: each near miss changes one field of a qualifying purchase."""

    program: ProgramDefinition
    merchants: tuple[Mapping[str, str], ...]
    amounts: tuple[int, int]
    """The lowest and highest amount of a qualifying purchase, in minor units."""
    near_misses: tuple[Mapping[str, Any], ...]


def _coffee() -> Shop:
    program = ProgramDefinition.model_validate(
        {
            "id": "lp_demo_coffee_5th_free",
            "name": "Bean Brothers - every fifth coffee free",
            "qualifying_threshold": 5,
            "reward_config": {"type": "refund", "max_amount": 450, "currency": "GBP"},
            "display_content": {
                "title": "Your fifth coffee is on us",
                "image": f"{_IMAGES}/bean-brothers/hero.png",
                "summary": "Buy 5 coffees with your linked card and the 5th is free.",
                "description": "Each coffee of £3.00 or more at a Bean Brothers cafe earns a "
                "stamp; the one that earns the fifth is refunded, up to £4.50.",
                "terms": "Visa and Mastercard only. The Heathrow T5 kiosk does not count.",
                "reward": {"formatted": "Free coffee, up to £4.50"},
            },
            "rules": {
                "brand_ids": ["brand_bean_brothers"],
                "mccs": ["5814"],
                "exclude_merchant_ids": ["mer_bean_brothers_lhr_t5"],
                "currencies": ["GBP"],
                "min_amount": 300,
                "card_schemes": ["visa", "mastercard"],
            },
        }
    )
    brand = {"mcc": "5814", "brand_id": "brand_bean_brothers", "country": "GB"}
    kiosk = {"id": "mer_bean_brothers_lhr_t5", "name": "Bean Brothers Heathrow T5", **brand}
    return Shop(
        program,
        merchants=(
            {"id": "mer_bean_brothers_soho", "name": "Bean Brothers Soho", **brand},
            {"id": "mer_bean_brothers_angel", "name": "Bean Brothers Angel", **brand},
        ),
        amounts=(300, 520),
        near_misses=(
            {"amount": 250},
            {"card": {"id": "card_demo_amex", "scheme": "amex"}},
            {"merchant": kiosk},
        ),
    )


def _bakery() -> Shop:
    program = ProgramDefinition.model_validate(
        {
            "id": "lp_demo_bakery_3_visits",
            "name": "Crumb & Co - £2 back after 3 visits",
            "qualifying_threshold": 3,
            "reward_config": {"type": "fixed-reward", "amount": 200, "currency": "GBP"},
            "display_content": {
                "title": "£2 back after 3 visits",
                "image": f"{_IMAGES}/crumb/hero.png",
                "summary": "Visit any Crumb & Co bakery three times and get £2 back.",
                "description": "Every purchase in pounds at a Crumb & Co bakery earns a stamp.",
                "terms": "One stamp per purchase. Refunded purchases lose their stamp.",
                "reward": {"formatted": "£2.00 back"},
            },
            "rules": {"brand_ids": ["brand_crumb_and_co"], "currencies": ["GBP"]},
        }
    )
    brand = {"mcc": "5462", "brand_id": "brand_crumb_and_co", "country": "GB"}
    return Shop(
        program,
        merchants=(
            {"id": "mer_crumb_angel", "name": "Crumb & Co Angel", **brand},
            {"id": "mer_crumb_soho", "name": "Crumb & Co Soho", **brand},
        ),
        amounts=(180, 950),
        near_misses=({"currency": "EUR"},),
    )


def _grocery() -> Shop:
    program = ProgramDefinition.model_validate(
        {
            "id": "lp_demo_grocery_4_shops",
            "name": "Greengrocer - £5 after 4 shops of £20",
            "qualifying_threshold": 4,
            "reward_config": {"type": "fixed-reward", "amount": 500, "currency": "GBP"},
            "display_content": {
                "title": "£5 back after 4 shops of £20",
                "image": f"{_IMAGES}/greengrocer/hero.png",
                "summary": "Spend £20 or more four times and get £5.",
                "description": "Every shop of £20 or more at Islington or Hackney earns a stamp.",
                "terms": "Online orders do not count.",
                "reward": {"formatted": "£5.00"},
            },
            "rules": {
                "merchant_ids": ["mer_greengrocer_islington", "mer_greengrocer_hackney"],
                "currencies": ["GBP"],
                "min_amount": 2000,
            },
        }
    )
    shop = {"mcc": "5411", "country": "GB"}
    return Shop(
        program,
        merchants=(
            {"id": "mer_greengrocer_islington", "name": "Greengrocer Islington", **shop},
            {"id": "mer_greengrocer_hackney", "name": "Greengrocer Hackney", **shop},
        ),
        amounts=(2000, 6500),
        near_misses=({"amount": 1450},),
    )


def demo_shops() -> tuple[Shop, ...]:
    """The coffee (a refund reward), bakery and grocery (fixed rewards) programs and shops."""
    return (_coffee(), _bakery(), _grocery())
