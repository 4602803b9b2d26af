"""Chaos suite: the real pipeline under injected faults, proving nothing acknowledged is lost.

``rig`` runs the stack and the services, ``nas`` is the RADIUS sender, ``proxy`` cuts the
edge uplink, ``faults`` defines the faults and measures each run (see docs/chaos.md).
"""
