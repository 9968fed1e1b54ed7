"""Agent roles: the async handlers a task visits. They never see sockets."""

from matrixhpc.agents.base import Agent, AgentContext

__all__ = ["Agent", "AgentContext"]
