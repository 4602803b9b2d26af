"""Device configs of an isolated deployment (``TP_TOPIC_NAMESPACE``: tests, benchmarks).

Such a deployment shares brokers with others, so its simulators publish the configured
sites as ``<namespace>-<site>`` (``simulate wifi --site-prefix``) and the gateway accepts
those ids. Consumers that judge sites by their config (fusion's ratio and capacity, the
alert rules) must know them too, or a namespaced run could never show what production
shows; this adds the prefixed twins of every site, camera and per-site alert rule.
"""

from __future__ import annotations

from device_configs.models import DeviceConfigs


def with_namespace(configs: DeviceConfigs, namespace: str | None) -> DeviceConfigs:
    """``configs`` plus ``<namespace>-`` twins of its sites (unchanged without a namespace)."""
    if not namespace:
        return configs

    def twin(site: str) -> str:
        return f"{namespace}-{site}"

    alerting = configs.alerting.model_copy(
        update={
            "sites": {
                **configs.alerting.sites,
                **{twin(s): r for s, r in configs.alerting.sites.items()},
            }
        }
    )
    return configs.model_copy(
        update={
            "sites": [
                *configs.sites,
                *(s.model_copy(update={"id": twin(s.id)}) for s in configs.sites),
            ],
            "cameras": [
                *configs.cameras,
                *(
                    c.model_copy(update={"id": twin(c.id), "site": twin(c.site)})
                    for c in configs.cameras
                ),
            ],
            "alerting": alerting,
        }
    )
