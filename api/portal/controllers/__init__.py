"""Controller adapters: one module per vendor, all producing a :class:`Landing`.

A landing is what the portal learned from the controller's redirect (who, where they were
going, how to grant later); granting turns it back into the vendor's call or redirect.
"""
