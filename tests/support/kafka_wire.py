"""One ApiVersions v3 exchange on a raw socket, decoded down to the response's tagged fields.

The Kafka protocol ("Protocol Guide", KIP-482): ApiVersions v3 is a flexible version. Its
request has header v2 (api_key, api_version, correlation_id, client_id, tagged fields) and a
body of two compact strings and tagged fields; its response keeps header v0 (correlation_id
only) and ends with tagged fields: 0 SupportedFeatures, 1 FinalizedFeaturesEpoch,
2 FinalizedFeatures, 3 ZkMigrationReady. A tagged field is uvarint tag, uvarint size, bytes.
"""

from __future__ import annotations

import socket
import struct

API_VERSIONS = 18
CORRELATION_ID = 7


def api_versions_v3_request(client_id: bytes = b"autostamp-tests") -> bytes:
    header = struct.pack(">hhih", API_VERSIONS, 3, CORRELATION_ID, len(client_id)) + client_id
    body = _compact_string(b"autostamp-tests") + _compact_string(b"1.0") + b"\x00"
    message = header + b"\x00" + body
    return struct.pack(">i", len(message)) + message


def api_versions_v3_tagged_fields(host: str, port: int) -> list[tuple[int, bytes]]:
    """Ask the broker for its API versions; the response's top-level tagged fields, in order."""
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(api_versions_v3_request())
        (size,) = struct.unpack(">i", _receive(sock, 4))
        response = _receive(sock, size)
    correlation_id, error_code = struct.unpack_from(">ih", response)
    assert (correlation_id, error_code) == (CORRELATION_ID, 0)
    entries, at = _uvarint(response, 6)
    # Each API: key, min, max (int16 each) and an empty tag buffer; then throttle_time_ms.
    at += (entries - 1) * 7 + 4
    return tagged_fields(response, at)


def tagged_fields(buffer: bytes, at: int) -> list[tuple[int, bytes]]:
    count, at = _uvarint(buffer, at)
    fields = []
    for _ in range(count):
        tag, at = _uvarint(buffer, at)
        size, at = _uvarint(buffer, at)
        fields.append((tag, buffer[at : at + size]))
        at += size
    assert at == len(buffer), f"{len(buffer) - at} bytes after the tagged fields"
    return fields


def _compact_string(value: bytes) -> bytes:
    return bytes([len(value) + 1]) + value


def _uvarint(buffer: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buffer[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def _receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "the broker closed the connection"
        data += chunk
    return data
