"""The IOC (Intelligent Operations Centre): operator auth, alert actions, flows, FIWARE
export, the multi-kind live feed and the ``/ioc`` web console."""
