"""Validated site, access-point and camera configuration (YAML in ``device_configs/hcmc``)."""

from device_configs.loader import ConfigError, load_device_configs
from device_configs.models import AccessPoint, Camera, DeviceConfigs, Site, SiteKind

__all__ = [
    "AccessPoint",
    "Camera",
    "ConfigError",
    "DeviceConfigs",
    "Site",
    "SiteKind",
    "load_device_configs",
]
