"""The paho client set-up shared by the Publisher (the service) and the fleet reader (the CLI): one place for
MQTT v5-callback clients, credentials and TLS."""

from __future__ import annotations

import random
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def make_client(client_id: str, *, username: str = "", password: str | None = None, tls: bool = False,
                ca_file: str = "", cert_file: str = "", key_file: str = "", insecure: bool = False,
                factory: Any = mqtt.Client) -> Any:
    """A paho client (callback API v2) with credentials and TLS set; callbacks are the caller's."""
    client = factory(CallbackAPIVersion.VERSION2, client_id=client_id)
    if username:
        client.username_pw_set(username, password or None)
    if tls:
        client.tls_set(ca_certs=ca_file or None, certfile=cert_file or None, keyfile=key_file or None)
        if insecure:
            client.tls_insecure_set(True)
    return client


def jitter_reconnect(client: Any, low: float = 1.0, high: float = 5.0, cap: float = 30.0) -> None:
    """Draw the first retry delay at random (paho then doubles it up to `cap`). paho's backoff has no
    jitter: after a broker restart every device would retry in the same instant, at 1, 2, 4... s."""
    client.reconnect_delay_set(min_delay=random.uniform(low, high), max_delay=cap)
