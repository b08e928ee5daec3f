from sqlalchemy import Engine, text

from autostamp.wiring import broker_metadata
from autostamp.settings import TopicSettings


def test_fixture_database_is_migrated(engine: Engine) -> None:
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from programs")).scalar_one() == 0


def test_fixture_topics_exist(kafka_bootstrap: str, topics: TopicSettings) -> None:
    names = broker_metadata({"bootstrap.servers": kafka_bootstrap})
    assert topics.transactions in names and topics.programs in names
