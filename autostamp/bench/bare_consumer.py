"""The baseline of `bench pipeline`: a faust agent that only consumes and decodes the topic.

Run as `python -m autostamp.bench.bare_consumer TOPIC COUNT OUT` with the same Kafka settings
as a worker; it writes the seconds from its first message to its COUNT-th to OUT and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any, cast

import faust
from faust.streams import Stream

from autostamp.settings import Settings
from autostamp.wiring import worker_config
from rules import InvalidTransaction, parse_transaction
from streams.app import faust_app


def main(topic_name: str, expected: int, out: Path) -> None:
    config = worker_config(Settings())
    app = faust_app(config, f"bare-{os.getpid()}")
    topic = app.topic(topic_name, key_type=bytes, value_type=bytes, value_serializer="raw")
    seen = {"count": 0, "first": 0.0}

    @app.agent(topic, concurrency=1)
    async def consume(stream: Any) -> None:
        batches = cast(Stream[Any], stream).noack_take(config.batch_size, within=0.05)
        async for events in batches:
            seen["first"] = seen["first"] or time.perf_counter()
            for event in events:
                with contextlib.suppress(InvalidTransaction):
                    parse_transaction(event.message.value)
                await cast(Stream[Any], stream).ack(event)
            seen["count"] += len(events)
            if seen["count"] >= expected:
                # faust redirects stdout into its logging: the figure goes to a file.
                seconds = time.perf_counter() - seen["first"]
                await asyncio.to_thread(out.write_text, f"{seconds:.6f}")
                os._exit(0)

    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
