"""The batch wire format as a model, for its JSON Schema (see :mod:`schemas.batch`).

Why a module of its own: the model names every event type, and loading them all cost a
site box's Wi-Fi agent ~30 ms and several MB for a format it only writes.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, RootModel

from schemas.batch import MAX_BATCH_EVENTS
from schemas.registry import AnyEvent


class EventBatchV1(RootModel[list[AnyEvent]]):
    """A JSON array of 1..MAX_BATCH_EVENTS event envelopes published on one device topic.

    Documentation of the wire format (exported as JSON Schema): the gateway does not
    validate batches with this model, because one bad element must not reject the others.
    """

    root: Annotated[list[AnyEvent], Field(min_length=1, max_length=MAX_BATCH_EVENTS)]
