"""Program definitions from ops files: what loads, and errors that point at the fault."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from rules import (
    FixedReward,
    ProgramDefinition,
    ProgramFileError,
    RefundReward,
    explain_program,
    load_program,
    parse_program,
    parse_transaction,
)
from rules.samples import sample_program

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "programs"
ProgramBuilder = Callable[..., ProgramDefinition]

VALID_YAML = """\
id: lp_coffee
name: Coffee
qualifying_threshold: 5
reward_config: {type: refund, max_amount: 450, currency: GBP}
display_content: {title: t, image: i, summary: s, description: d, terms: t}
rules:
  mccs: ["5814"]
  currencies: [GBP]
  min_amount: 300
"""


def program_json(**changes: Any) -> str:
    reward = {"type": "fixed-reward", "amount": 500, "currency": "GBP"}
    return json.dumps(sample_program("lp_coffee", reward=reward, name="Coffee") | changes)


def file_error(text: str, fmt: str = "json") -> str:
    with pytest.raises(ProgramFileError) as caught:
        parse_program(text, source="ops/program." + fmt, fmt=fmt)  # type: ignore[arg-type]
    return str(caught.value)


def test_the_example_programs_load() -> None:
    coffee = load_program(EXAMPLES / "coffee-buy-5-get-1.yaml")
    grocery = load_program(EXAMPLES / "grocery-fixed-reward.json")

    assert coffee.id == "lp_coffee_buy_5_get_1"
    assert coffee.reward_config == RefundReward(max_amount=450, currency="GBP")
    assert coffee.rules.brand_ids == ("brand_bean_brothers",)
    assert grocery.reward_config == FixedReward(amount=500, currency="GBP")
    assert grocery.rules.days_of_week == (1, 2, 3, 4, 5)


@pytest.mark.parametrize("name", ["coffee-buy-5-get-1.yaml", "grocery-fixed-reward.json"])
def test_a_program_survives_the_round_trip_through_stored_json(name: str) -> None:
    program = load_program(EXAMPLES / name)

    stored = json.dumps(program.model_dump(mode="json"))

    assert ProgramDefinition.model_validate(json.loads(stored)) == program
    assert parse_program(stored, source="db", fmt="json") == program


def test_defaults_make_an_active_first_version_stamping_on_clearing() -> None:
    program = parse_program(program_json(), source="p.json", fmt="json")

    assert (program.status, program.version, program.rules.stamp_on) == ("active", 1, "clearing")
    assert program.rules.timezone == "UTC"


def test_any_of_lists_drop_repeated_values(make_program: ProgramBuilder) -> None:
    program = make_program({"mccs": ["5814", "5812", "5814"]})

    assert program.rules.mccs == ("5814", "5812")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"id": "coffee"}, "id: 'coffee' must be lp_ followed by letters, digits, _ or -"),
        ({"id": "lp_caf\u00e9"}, "id: 'lp_caf\u00e9' must be lp_ followed by"),
        ({"name": ""}, "name: must not be empty"),
        ({"qualifying_threshold": 0}, "qualifying_threshold: must be a whole number of stamps"),
        ({"qualifying_threshold": True}, "qualifying_threshold: must be a whole number"),
        ({"reward_config": {"type": "voucher"}}, "reward_config: must be an object whose type is"),
        ({"reward_config": {"amount": 500}}, "reward_config: must be an object whose type is"),
        (
            {"reward_config": {"type": "fixed-reward", "amount": 0, "currency": "GBP"}},
            "reward_config.fixed-reward.amount: must be a positive integer of minor units",
        ),
        (
            {"reward_config": {"type": "fixed-reward", "amount": 500, "currency": "XYZ"}},
            "reward_config.fixed-reward.currency: 'XYZ' is not an ISO 4217 currency code",
        ),
        (
            {"reward_config": {"type": "refund", "max_amount": 450}},
            "reward_config.refund.currency: is required with max_amount",
        ),
        ({"display_content": {"title": "t"}}, "display_content.image: is required"),
        ({"status": "live"}, "status: must be active, paused or archived"),
        ({"version": 0}, "version: must be an integer, 1 or more"),
        ({"rules": None}, "rules: must be an object"),
        (
            {"active_from": "2025-01-01T00:00:00"},
            "active_from: must be an RFC 3339 date-time with a UTC",
        ),
        (
            {"active_from": "2025-02-01T00:00:00Z", "active_until": "2025-02-01T00:00:00Z"},
            "active_until: 2025-02-01T00:00:00+00:00 is not after active_from",
        ),
        ({"colour": "blue"}, "colour: is not a known field (check the spelling)"),
    ],
)
def test_an_invalid_program_is_refused_naming_the_field(
    changes: dict[str, Any], message: str
) -> None:
    assert message in file_error(program_json(**changes))


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"min_ammount": 300}, "rules.min_ammount: is not a known field (check the spelling)"),
        ({"mccs": []}, "rules.mccs: must list at least one value (leave the field out"),
        ({"mccs": [5814]}, "rules.mccs[0]: must be a list of quoted 4-digit codes"),
        ({"mccs": "5814"}, "rules.mccs: must be a list of quoted 4-digit codes"),
        ({"bin_prefixes": [412345]}, "rules.bin_prefixes[0]: must be a list of quoted digit"),
        ({"bin_prefixes": ["41234567X"]}, "rules.bin_prefixes[0]: '41234567X' is not a BIN prefix"),
        ({"card_schemes": ["Visa"]}, "rules.card_schemes[0]: 'Visa' is not a lower-case card"),
        ({"merchant_countries": ["GBR"]}, "rules.merchant_countries[0]: 'GBR' is not an upper"),
        ({"days_of_week": [0]}, "rules.days_of_week[0]: must be a list of ISO weekdays"),
        ({"days_of_week": ["Monday"]}, "rules.days_of_week[0]: must be a list of ISO weekdays"),
        ({"hours_of_day": [24]}, "rules.hours_of_day[0]: must be a list of whole hours, 0 to 23"),
        ({"timezone": "Europe/Londres"}, "rules.timezone: 'Europe/Londres' is not a known IANA"),
        ({"timezone": "../etc/passwd"}, "rules.timezone: '../etc/passwd' is not a known IANA"),
        ({"timezone": "Europe"}, "rules.timezone: 'Europe' is not a known IANA"),
        ({"stamp_on": "refund"}, "rules.stamp_on: must be clearing or auth"),
        ({"daily_cap_per_member": 0}, "rules.daily_cap_per_member: must be an integer, 1 or more"),
        (
            {"currencies": ["GBP"], "min_amount": 500, "max_amount": 300},
            "rules.min_amount: 500 is above max_amount 300",
        ),
        ({"min_amount": 300}, "rules.min_amount: needs currencies to name exactly one currency"),
        (
            {"currencies": ["GBP", "EUR"], "max_amount": 300},
            "rules.max_amount: needs currencies to name exactly one currency",
        ),
        (
            {"merchant_ids": ["m1", "m2"], "exclude_merchant_ids": ["m2"]},
            "rules.exclude_merchant_ids: m2 also in merchant_ids; pick one",
        ),
        (
            {"mccs": ["5814"], "exclude_mccs": ["5814", "5812"]},
            "rules.exclude_mccs: 5814 also in mccs; pick one",
        ),
    ],
)
def test_conflicting_or_malformed_rules_are_refused_naming_the_field(
    rules: dict[str, Any], message: str
) -> None:
    assert message in file_error(program_json(rules=rules))


def test_rules_must_be_given_even_to_stamp_any_purchase() -> None:
    without_rules = {k: v for k, v in json.loads(program_json()).items() if k != "rules"}

    assert file_error(json.dumps(without_rules)).endswith("rules: is required")


def test_every_problem_in_a_file_is_reported_at_once() -> None:
    text = program_json(qualifying_threshold=0, rules={"mccs": []})

    assert "qualifying_threshold: " in file_error(text) and "rules.mccs: " in file_error(text)


def test_a_program_built_in_code_raises_pydantics_error(make_program: ProgramBuilder) -> None:
    with pytest.raises(ValidationError):
        make_program({"hours_of_day": [25]})


def test_a_yaml_syntax_error_names_its_line() -> None:
    broken = VALID_YAML.replace('  mccs: ["5814"]', '  mccs: ["5814"')

    message = file_error(broken, fmt="yaml")

    assert message.startswith("ops/program.yaml: line 8, column 3: YAML syntax error: ")


def test_a_json_syntax_error_names_its_line() -> None:
    message = file_error('{\n  "id": "lp_x",\n  "name": \n}')

    assert message.startswith("ops/program.json: line 4, column 1: JSON syntax error: ")


def test_a_yaml_key_given_twice_is_refused_rather_than_overwritten() -> None:
    message = file_error(VALID_YAML + "rules: {}\n", fmt="yaml")

    assert "line 10, column 1: YAML syntax error: key 'rules' appears twice" in message


def test_an_unquoted_yaml_mcc_is_refused_with_a_hint() -> None:
    message = file_error(VALID_YAML.replace('["5814"]', "[5814]"), fmt="yaml")

    assert message == (
        "ops/program.yaml: rules.mccs[0]: must be a list of quoted 4-digit codes, such as ['5814']"
    )


@pytest.mark.parametrize("text", ["- lp_coffee\n- lp_tea\n", "just words\n", ""])
def test_a_file_that_is_not_one_mapping_is_refused(text: str) -> None:
    assert file_error(text, fmt="yaml").endswith(
        "must hold one program: a mapping with id, name, rules..."
    )


def test_a_yaml_file_with_two_documents_is_refused() -> None:
    assert "YAML syntax error" in file_error(VALID_YAML + "---\n" + VALID_YAML, fmt="yaml")


def test_load_refuses_a_file_of_unknown_kind(tmp_path: Path) -> None:
    path = tmp_path / "program.toml"
    path.write_text("id = 'lp_x'\n")

    with pytest.raises(ProgramFileError, match=r"name the file \.yaml, \.yml or \.json"):
        load_program(path)


def test_load_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProgramFileError, match=r"missing\.yaml: cannot be read: No such file"):
        load_program(tmp_path / "missing.yaml")


def test_load_reads_yml_files_as_yaml(tmp_path: Path) -> None:
    path = tmp_path / "coffee.yml"
    path.write_text(VALID_YAML)

    assert load_program(path).rules.min_amount == 300


def test_the_example_transactions_qualify_and_nearly_qualify_as_documented() -> None:
    coffee = load_program(EXAMPLES / "coffee-buy-5-get-1.yaml")
    transactions = EXAMPLES.parent / "transactions"
    qualifying = parse_transaction((transactions / "coffee-qualifying.json").read_bytes())
    near_miss = parse_transaction((transactions / "coffee-near-miss.json").read_bytes())

    assert explain_program(coffee, qualifying).matched
    assert explain_program(coffee, near_miss).condition == "min_amount"


K42_LITERAL_REWARD = {"type": "fixed-reward", "amount": 500}


def test_k42s_literal_fixed_reward_takes_the_instance_currency() -> None:
    text = program_json(reward_config=K42_LITERAL_REWARD)

    program = parse_program(text, source="k42.json", fmt="json", default_currency="EUR")

    assert program.reward_config == FixedReward(amount=500, currency="EUR")


def test_a_named_currency_wins_over_the_instance_default() -> None:
    program = parse_program(program_json(), source="p.json", fmt="json", default_currency="EUR")

    assert program.reward_config == FixedReward(amount=500, currency="GBP")


def test_without_an_instance_currency_a_reward_without_one_is_refused_with_how_to_fix() -> None:
    message = file_error(program_json(reward_config=K42_LITERAL_REWARD))

    assert "reward_config" in message and "currency" in message
    assert "default currency" in message
