"""Write a preset's calibration into ``cameras.yaml`` without rewriting the rest of the file.

Operators keep comments and hand-formatted geometry in that file; dumping the whole YAML
would lose them. So we locate the preset's mapping with PyYAML's node positions and replace
(or insert) only its ``calibration:`` block, then reload the configs to prove the file is
still valid, restoring the old text if it is not.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from device_configs.camera import Calibration
from device_configs.loader import ConfigError, load_device_configs


def _value(node: yaml.Node, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                found: yaml.Node = v
                return found
    return None


def _find(seq: yaml.Node | None, key: str, wanted: str) -> yaml.MappingNode:
    if isinstance(seq, yaml.SequenceNode):
        for item in seq.value:
            if not isinstance(item, yaml.MappingNode):
                continue
            v = _value(item, key)
            if isinstance(v, yaml.ScalarNode) and v.value == wanted:
                return item
    raise LookupError(f"no {key} {wanted!r}")


def _end_line(node: yaml.Node) -> int:
    """First line after ``node``.

    A block collection's end mark sits on the next token (maybe mid-line, the next list
    item), so we descend to its last leaf, whose end mark is exact.
    """
    while isinstance(node, yaml.CollectionNode) and not node.flow_style and node.value:
        last = node.value[-1]
        node = last[1] if isinstance(node, yaml.MappingNode) else last
    end = node.end_mark
    return int(end.line) if end.column == 0 else int(end.line) + 1


def calibration_yaml(cal: Calibration, indent: int) -> list[str]:
    body = yaml.safe_dump(
        {"calibration": cal.model_dump(mode="json")}, sort_keys=False, default_flow_style=False
    )
    return [" " * indent + line + "\n" for line in body.splitlines()]


def write_calibration(config_dir: Path, camera_id: str, preset: str, cal: Calibration) -> Path:
    """Put ``cal`` under the preset in ``<config_dir>/cameras.yaml``; returns the file."""
    path = config_dir / "cameras.yaml"
    original = path.read_text()
    root = yaml.compose(original, Loader=yaml.SafeLoader)
    camera = _find(_value(root, "cameras") if root else None, "id", camera_id)
    setup = _value(camera, "setup")
    if setup is None:
        raise LookupError(f"camera {camera_id!r} has no setup")
    node = _find(_value(setup, "presets"), "name", preset)
    lines = original.splitlines(keepends=True)
    indent = int(node.value[0][0].start_mark.column)
    old = next(((k, v) for k, v in node.value if k.value == "calibration"), None)
    if old is not None:
        start, stop = int(old[0].start_mark.line), _end_line(old[1])
    else:
        start = stop = _end_line(node.value[-1][1])
    while stop > start and stop <= len(lines) and not lines[stop - 1].strip():
        stop -= 1  # keep blank lines that followed the block
    if start > 0 and not lines[start - 1].endswith("\n"):
        lines[start - 1] += "\n"
    lines[start:stop] = calibration_yaml(cal, indent)
    path.write_text("".join(lines))
    try:
        configs = load_device_configs(config_dir)
        stored = next(c for c in configs.cameras if c.id == camera_id)
        assert stored.setup is not None and stored.setup.preset(preset).calibration == cal
    except (ConfigError, AssertionError, StopIteration, KeyError):
        path.write_text(original)
        raise
    return path
