"""Matrix's LLM resource client, pointed at one fixed OpenAI-compatible URL.

Runs inside the Matrix venv only (imports ``matrix``); never imported by matrixhpc.

Why it exists: Matrix 0.2.6 reaches LLMs only through applications it deployed itself
(``LLMResourceClient.__init__`` asks the Matrix cluster for the app's metadata and an
endpoint cache that lists the app's Ray Serve proxies). The benchmark runs both frameworks
against ONE ``matrixhpc serve simulated`` process, so this subclass replaces just those two
look-ups: the model name comes from the config and the "endpoint cache" always answers the
fixed URL. Everything else is Matrix's own code path, unchanged: ``utilize`` ->
``query_llm.make_request`` (a new ``openai.AsyncOpenAI`` per request, 3 retries with
backoff, the error recorded in the turn), so the measured cost per call is what a Matrix
user pays.
"""

from __future__ import annotations

from typing import Any

from matrix.agents.orchestrator import BaseResourceClient
from matrix.agents.resource_client import LLMResourceClient
from omegaconf import DictConfig, OmegaConf


class FixedEndpoints:
    """Stands in for Matrix's ``EndpointCache``: an awaitable list of base URLs."""

    def __init__(self, url: str) -> None:
        self.urls = [url.rstrip("/")]

    async def __call__(self, force_update: bool = False) -> list[str]:  # noqa: ARG002
        return self.urls


def _plain(value: Any) -> dict[str, Any]:
    """Hydra hands nested options over as DictConfig; the OpenAI client needs plain dicts
    (``extra_body`` is serialised to JSON)."""
    if isinstance(value, DictConfig):
        plain = OmegaConf.to_container(value, resolve=True)
        assert isinstance(plain, dict)
        return {str(k): v for k, v in plain.items()}
    return dict(value or {})


class FixedURLResourceClient(LLMResourceClient):
    """``LLMResourceClient`` without a Matrix cluster: ``base_url`` (``http://h:p/v1``) and
    ``model`` replace the deployed app's metadata. ``matrix_cli`` is accepted (Matrix passes
    it to every resource) and unused."""

    def __init__(
        self,
        resource_id: str,
        matrix_cli: Any,  # noqa: ARG002 (Matrix's resource signature)
        base_url: str,
        model: str,
        sampling_params: dict[str, Any] | None = None,
        tools_params: dict[str, Any] | None = None,
        exec_params: dict[str, Any] | None = None,
    ) -> None:
        BaseResourceClient.__init__(self, resource_id)  # skip the cluster look-up
        self.sampling_params = _plain(sampling_params)
        self.tools_params = _plain(tools_params)
        self.exec_params = _plain(exec_params)
        self.llm_metadata = {"model_name": model, "name": resource_id}
        self.endpoint_cache = FixedEndpoints(base_url)
