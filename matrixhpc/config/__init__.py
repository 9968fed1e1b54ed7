"""The run configuration: schema, loading, dotted overrides and validation errors.

Everything a run needs is checked here, before a single process starts: unknown
keys (a typo must not silently fall back to a default), references between
sections (a role naming a missing service), templates and conditions that do not
compile. Errors name the dotted key and the reason.
"""

from .errors import ConfigError
from .loading import apply_override, dump_config, load_config, parse_override, validate
from .schema import (
    DatasetConfig,
    EdgeConfig,
    Engine,
    GroupConfig,
    OutputConfig,
    RoleConfig,
    RoutingConfig,
    RunConfig,
    ServerJobConfig,
    ServiceConfig,
    SimulatedConfig,
    SlurmConfig,
    SlurmJobConfig,
    WorkersConfig,
)

__all__ = [
    "ConfigError",
    "DatasetConfig",
    "EdgeConfig",
    "Engine",
    "GroupConfig",
    "OutputConfig",
    "RoleConfig",
    "RoutingConfig",
    "RunConfig",
    "ServerJobConfig",
    "ServiceConfig",
    "SimulatedConfig",
    "SlurmConfig",
    "SlurmJobConfig",
    "WorkersConfig",
    "apply_override",
    "dump_config",
    "load_config",
    "parse_override",
    "validate",
]
