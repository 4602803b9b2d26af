"""Base of every config model we own."""

from pydantic import BaseModel, ConfigDict


class ConfigModel(BaseModel):
    """Forbids unknown fields: a typo in a config file fails loudly at load time instead of
    silently disabling a setting. Frozen, because config is read once and shared."""

    model_config = ConfigDict(extra="forbid", frozen=True)
