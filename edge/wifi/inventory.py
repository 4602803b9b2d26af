"""Which site and AP a report is about, and which RADIUS clients may talk to the agent.

Built once from the device configs, restricted to the sites this agent serves (the MQTT
ACL lets it publish only for those). Lookups are dictionary hits: they run per packet.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import ip_address

from device_configs.models import AccessPoint, DeviceConfigs
from device_configs.wifi import mac_key, resolve_secret


@dataclass(frozen=True)
class Nas:
    """A RADIUS client: a controller for a whole site, or a single AP acting as NAS."""

    secret: bytes
    site: str
    ap: str | None  # set when the NAS *is* one AP


class Inventory:
    def __init__(self, configs: DeviceConfigs, sites: set[str], secrets: Mapping[str, str]) -> None:
        unknown = sites - {s.id for s in configs.sites}
        if unknown:
            raise ValueError(f"agent serves unknown sites: {sorted(unknown)}")
        self.sites = sites
        self.aps: dict[str, AccessPoint] = {
            ap.id: ap for ap in configs.access_points if ap.site in sites
        }
        self._by_nas_id: dict[str, AccessPoint] = {}
        self._by_bssid: dict[str, AccessPoint] = {}
        self.nas_by_ip: dict[str, Nas] = {}
        for ap in self.aps.values():
            if ap.nas_identifier:
                self._by_nas_id[ap.nas_identifier] = ap
            for bssid in ap.bssids:
                self._by_bssid[mac_key(bssid)] = ap
            if ap.nas_ip and ap.radius_secret:
                secret = resolve_secret(ap.radius_secret, secrets).encode()
                self.nas_by_ip[str(ap.nas_ip)] = Nas(secret, ap.site, ap.id)
        for site in configs.sites:
            if site.id in sites:
                for nas in site.radius_nas:
                    secret = resolve_secret(nas.secret, secrets).encode()
                    self.nas_by_ip[str(nas.ip)] = Nas(secret, site.id, None)

    def nas(self, ip: str) -> Nas | None:
        nas = self.nas_by_ip.get(ip)  # the socket's own spelling: a hit without parsing
        if nas is not None:
            return nas
        try:
            return self.nas_by_ip.get(str(ip_address(ip)))
        except ValueError:
            return None

    def ap_by_nas_identifier(self, nas_id: str) -> AccessPoint | None:
        return self._by_nas_id.get(nas_id) or self.aps.get(nas_id)

    def ap_by_bssid(self, mac: str) -> AccessPoint | None:
        return self._by_bssid.get(mac_key(mac))

    def resolve(
        self,
        nas: Nas,
        nas_identifier: str | None,
        bssid: str | None,
        names: Sequence[str] = (),
    ) -> AccessPoint | None:
        """The AP of a RADIUS report: NAS-Identifier, then Called-Station MAC, then other
        names the report gives (vendor AP name, group, location: ``edge.wifi.vendors``),
        then the NAS itself when it is one AP."""
        candidates = itertools.chain(
            (self.ap_by_nas_identifier(nas_identifier) if nas_identifier else None,),
            (self.ap_by_bssid(bssid) if bssid else None,),
            (self.ap_by_nas_identifier(name) for name in names),
            (self.aps.get(nas.ap) if nas.ap else None,),
        )
        for ap in candidates:
            if ap is not None and ap.site == nas.site:  # a NAS speaks only for its site
                return ap
        return None
