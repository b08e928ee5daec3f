"""`autostamp worker`: one stream worker process; run more of them to scale out."""

from __future__ import annotations

import faust

from autostamp.settings import Settings
from autostamp.wiring import async_engine, kafka_client_config
from streams.app import create_app
from streams.kafka import KafkaPublisher
from streams.relay import Relay
from streams.service import StampingService


def build_app(settings: Settings) -> faust.App:
    engine = async_engine(settings)
    service = StampingService(engine)
    relay = Relay(engine, KafkaPublisher(kafka_client_config(settings)), settings.kafka.topics)
    return create_app(settings, service, relay)


def run_worker(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT; faust commits acknowledged offsets on the way out."""
    app = build_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), quiet=True)
    worker.execute_from_commandline()
