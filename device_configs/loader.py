"""Load a device-config directory and report errors as ``file:line: field: message``.

PyYAML's composed node tree keeps line numbers; pydantic's error locations are mapped
back onto it, so an operator sees the exact line to fix instead of a model dump.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from device_configs.models import DeviceConfigs

#: One file per section: sites.yaml holds ``sites:``, and so on.
SECTION_FILES = ("sites", "access_points", "cameras", "alerting")


class ConfigError(ValueError):
    """Config that failed to load; ``problems`` lists ``file:line: field: message`` lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid device configuration:\n  " + "\n  ".join(problems))
        self.problems = problems


def load_device_configs(directory: Path) -> DeviceConfigs:
    """Read ``<section>.yaml`` files from ``directory`` and validate them together."""
    data: dict[str, Any] = {}
    nodes: dict[str, tuple[Path, yaml.Node]] = {}
    for section in SECTION_FILES:
        path = directory / f"{section}.yaml"
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            loaded = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError([f"{path}: {exc}"]) from None
        if not isinstance(loaded, dict) or section not in loaded:
            raise ConfigError([f"{path}:1: expected a top-level '{section}:' key"])
        data[section] = loaded[section]
        if node is not None:
            nodes[section] = (path, node)
    if "sites" not in data:
        raise ConfigError([f"{directory / 'sites.yaml'}: missing (every deployment needs sites)"])
    try:
        return DeviceConfigs.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_locate(err, nodes, directory) for err in exc.errors()]) from None


def _locate(err: Any, nodes: dict[str, tuple[Path, yaml.Node]], directory: Path) -> str:
    loc = list(err["loc"])
    field = ".".join(str(p) for p in loc) or "(root)"
    if not loc or loc[0] not in nodes:
        return f"{directory}: {field}: {err['msg']}"
    path, node = nodes[str(loc[0])]
    line = _line_of(node, [str(loc[0]), *loc[1:]])
    return f"{path}:{line}: {field}: {err['msg']}"


def _line_of(node: yaml.Node, loc: list[Any]) -> int:
    """Deepest node along ``loc`` that exists; its 1-based line."""
    for key in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == str(key)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            child = node.value[key]
        if child is None:
            break
        node = child
    return node.start_mark.line + 1
