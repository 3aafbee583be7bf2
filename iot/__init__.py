"""IoT alarms (物联感知): devices such as smart circuit breakers, smoke detectors, manhole-cover
and water-level sensors report over MQTT; their alarms become cases in the same loop as a
camera's (docs/iot.md).

A top-level package of its own because device ingest is none of streams (video), models,
vision (pixels), patrol (camera visits) or api (HTTP): it is a second kind of sensor whose
observations go to the one incident writer.
"""

from .config import BrokerConfig, DeviceConfig, IotConfig
from .mapping import DeviceMapping, DeviceMessage, MalformedMessage, MappingError, load_mappings
from .registry import DeviceError, DeviceExists, DeviceLimitReached, DeviceNotFound, DeviceRegistry, parse_csv
from .service import DeviceView, IotService

__all__ = [
    "BrokerConfig",
    "DeviceConfig",
    "DeviceError",
    "DeviceExists",
    "DeviceLimitReached",
    "DeviceMapping",
    "DeviceMessage",
    "DeviceNotFound",
    "DeviceRegistry",
    "DeviceView",
    "IotConfig",
    "IotService",
    "MalformedMessage",
    "MappingError",
    "load_mappings",
    "parse_csv",
]
