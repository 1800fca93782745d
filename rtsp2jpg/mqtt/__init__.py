"""MQTT: contract.py (topics and payloads), publisher.py + messages.py (the service side), snapshots.py,
client.py (paho set-up shared with the fleet reader), fleet.py + reader.py (`rtsp2jpg fleet`)."""
