"""Two cameras with the same id at two sites both keep their command subscription.

Camera ids are unique per site only ("cam1" is everywhere). The command subscriber's MQTT
client id used to be ``tp-cmd-<camera>``: the broker let the second camera's connection
take over the first's, the first reconnected and took it back, and commands sent meanwhile
reached neither. Real Mosquitto; the commands are what the cameras receive.
"""

from __future__ import annotations

import asyncio

from core.settings import Settings
from edge.camera.commands import CommandSubscriber
from schemas.topics import DeviceKind, MqttStream, MqttTopic

TIMEOUT = 10.0


async def test_same_camera_id_at_two_sites_each_gets_its_commands(
    settings: Settings, namespace: str, mqtt_publish: object
) -> None:
    loop = asyncio.get_running_loop()
    sites = (f"{namespace}-a", f"{namespace}-b")
    queues: dict[str, asyncio.Queue[bytes]] = {s: asyncio.Queue() for s in sites}
    subscribers = {
        s: CommandSubscriber(settings.mqtt_client_settings(), s, "cam1", queues[s], loop)
        for s in sites
    }
    try:
        for sub in subscribers.values():
            sub.start()
        for sub in subscribers.values():
            await asyncio.wait_for(sub.subscribed.wait(), TIMEOUT)
        await asyncio.sleep(2.0)  # long enough for a takeover and a reconnect (1 s back-off)
        connected = {s: sub._client.is_connected() for s, sub in subscribers.items()}
        assert connected == dict.fromkeys(sites, True)
        for site in sites:
            topic = str(MqttTopic.build(site, DeviceKind.CAMERA, "cam1", MqttStream.CMD))
            await mqtt_publish(topic, [f"command for {site}".encode()])  # type: ignore[operator]
        for site in sites:
            got = await asyncio.wait_for(queues[site].get(), TIMEOUT)
            assert got == f"command for {site}".encode()
            assert queues[site].empty()
    finally:
        for sub in subscribers.values():
            sub.stop()
