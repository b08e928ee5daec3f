"""docker-compose.yml is the production-like stack: checked by reading, where no engine runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def _command(service: dict[str, Any]) -> list[str]:
    command: list[str] = service["command"]
    return command


def test_compose_runs_kafka_in_kraft_mode_without_zookeeper(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert not any("zookeeper" in name for name in compose["services"])


@pytest.mark.parametrize("role", ["worker", "api", "dispatcher"])
def test_each_process_is_built_from_the_dockerfile_and_waits_for_setup(
    compose: dict[str, Any], role: str
) -> None:
    service = compose["services"][role]
    assert service["build"] == "."
    assert _command(service) == [role]
    assert service["depends_on"]["setup"]["condition"] == "service_completed_successfully"
    environment = service["environment"]
    assert environment["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert "@postgres:5432/" in environment["DATABASE_URL"]


def test_the_worker_takes_the_programs_signing_key_from_the_environment_and_requires_it(
    compose: dict[str, Any],
) -> None:
    environment = compose["services"]["worker"]["environment"]
    assert environment["AUTOSTAMP_PROGRAMS_SIGNING_KEY"].startswith(
        "${AUTOSTAMP_PROGRAMS_SIGNING_KEY:?"
    )
    for role in ("api", "dispatcher", "setup"):
        assert "AUTOSTAMP_PROGRAMS_SIGNING_KEY" not in compose["services"][role]["environment"]


def test_setup_migrates_once_both_stores_are_healthy(compose: dict[str, Any]) -> None:
    setup = compose["services"]["setup"]
    assert _command(setup) == ["setup"]
    assert {name: dep["condition"] for name, dep in setup["depends_on"].items()} == {
        "postgres": "service_healthy",
        "kafka": "service_healthy",
    }


def test_the_database_credentials_match_the_postgres_service(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]["environment"]
    url = compose["services"]["worker"]["environment"]["DATABASE_URL"]
    expected = f"{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}@postgres:5432/"
    assert expected + postgres["POSTGRES_DB"] in url


def test_no_password_or_key_has_a_default_and_each_must_be_set(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]["environment"]
    shared = compose["x-autostamp"]["environment"]
    required = {
        "POSTGRES_PASSWORD": postgres["POSTGRES_PASSWORD"],
        "AUTOSTAMP_SECRET_KEY": shared["AUTOSTAMP_SECRET_KEY"],
        "AUTOSTAMP_PROGRAMS_SIGNING_KEY": compose["services"]["worker"]["environment"][
            "AUTOSTAMP_PROGRAMS_SIGNING_KEY"
        ],
    }
    for name, value in required.items():
        assert value.startswith(f"${{{name}:?"), f"{name} must come from the environment"


def test_the_api_is_published_on_this_machine_only(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    assert api["environment"]["AUTOSTAMP_API_HOST"] == "0.0.0.0"  # inside its container
    assert api["ports"] == ["127.0.0.1:8000:8000"]
    for name in ("postgres", "kafka", "worker", "dispatcher", "setup"):
        assert "ports" not in compose["services"][name]


def test_the_dockerfile_copies_every_package_and_runs_the_cli() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("autostamp", "ledger", "rules", "streams", "publisher_api", "webhooks"):
        assert f"COPY {package} ./{package}" in dockerfile
    assert 'ENTRYPOINT ["autostamp"]' in dockerfile
