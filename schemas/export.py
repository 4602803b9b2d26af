"""Export the contract as JSON Schema files (``tourpulse schemas export``).

The committed files under ``schemas/json/`` are what non-Python consumers (the city data
platform, firmware authors) read; a test fails when they drift from the models.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pydantic import BaseModel

from schemas.batch_schema import EventBatchV1
from schemas.flows import FlowsHourlyV1
from schemas.registry import EVENT_MODELS
from schemas.stream_out import (
    AlertChangedV1,
    AlertViewV1,
    DeadLetterV1,
    FusedOccupancyV1,
    OccupancyUpdateV1,
)

SCHEMA_DIR = Path(__file__).parent / "json"
_EXTRA_MODELS: tuple[type[BaseModel], ...] = (
    DeadLetterV1,
    OccupancyUpdateV1,
    FusedOccupancyV1,
    AlertChangedV1,
    AlertViewV1,
    FlowsHourlyV1,
    EventBatchV1,
)


def schema_documents() -> dict[str, str]:
    """File name → JSON text for every exported model (stable formatting for diffs)."""
    docs: dict[str, str] = {}
    for model in (*EVENT_MODELS, *_EXTRA_MODELS):
        schema = model.model_json_schema(mode="serialization")
        fields = model.model_fields
        if "type" in fields and "version" in fields and isinstance(fields["type"].default, str):
            schema["x-kafka-topic"] = str(model.kafka_topic)  # type: ignore[attr-defined]
            schema["x-mqtt-stream"] = str(model.mqtt_stream)  # type: ignore[attr-defined]
            name = f"{fields['type'].default}.v{fields['version'].default}.json"
        else:
            name = f"{model.__name__}.json"
        docs[name] = json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return docs


def export(out_dir: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema file and remove stale ones; return the written paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    docs = schema_documents()
    for stale in out_dir.glob("*.json"):
        if stale.name not in docs:
            stale.unlink()
    written = []
    for name, text in docs.items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("schemas", help="event contract tools")
    ssub = p.add_subparsers(dest="schemas_cmd", required=True)
    e = ssub.add_parser("export", help="write JSON Schema files for every event model")
    e.add_argument("--out", type=Path, default=SCHEMA_DIR, help="output directory")
    e.set_defaults(func=lambda a: _cmd_export(a.out))


def _cmd_export(out: Path) -> int:
    for path in export(out):
        print(f"wrote {path}")
    return 0
