"""OpenAI-compatible HTTP backend (vLLM, TGI, Ollama, llama.cpp server): streamed chat completions.

httpx does the streaming, tenacity retries connection errors and 5xx answers before the first
token (never in the middle of an answer). URL, model name and key all come from ONE entry of the
admins' endpoint allow-list (`LLMConfig.endpoint_entry()`), so a key only ever goes to the URL it
was configured for; it travels in a header and is never logged.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from rag.llm.base import GenerationError, LLMBackend
from settings import UnknownEndpoint

log = logging.getLogger(__name__)


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code >= 500


class OpenAICompatibleBackend(LLMBackend):
    """POST {base_url}/chat/completions with stream=true and parse the server-sent events."""

    name = "openai"

    def __init__(self, config, transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(config)
        try:
            self.endpoint = config.endpoint_entry()
        except UnknownEndpoint as exc:
            raise GenerationError(str(exc)) from exc
        headers = {"Accept": "text/event-stream"}
        if self.endpoint.api_key is not None:  # the entry's own key, for the entry's own URL
            headers["Authorization"] = f"Bearer {self.endpoint.api_key.get_secret_value()}"
        self.client = httpx.Client(
            base_url=self.endpoint.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(config.request_timeout),
            transport=transport,
            follow_redirects=False,  # a redirect must not carry the key to another host
        )

    def describe(self) -> str:
        return f"{self.name}:{self.endpoint.name}:{self.endpoint.model}@{self.endpoint.base_url}"

    def _retrying(self) -> Retrying:
        return Retrying(
            stop=stop_after_attempt(self.config.retries + 1),
            wait=wait_exponential(0.2, max=2),
            retry=retry_if_exception(_retryable),
            reraise=True,
        )

    def load(self) -> None:
        """Check the endpoint answers (GET /models); generation errors are still handled per call."""
        try:
            for attempt in self._retrying():
                with attempt:
                    self.client.get("models").raise_for_status()
        except httpx.HTTPError as exc:
            raise GenerationError(f"endpoint {self.endpoint.name} unreachable: {type(exc).__name__}") from exc

    def _open(self, payload: dict) -> httpx.Response:
        for attempt in self._retrying():
            with attempt:
                response = self.client.send(
                    self.client.build_request("POST", "chat/completions", json=payload), stream=True
                )
                if response.status_code >= 400:
                    response.read()
                    response.close()
                    response.raise_for_status()
                return response
        raise GenerationError("unreachable")  # pragma: no cover (reraise=True)

    def stream(self, messages: list[dict], stop: threading.Event | None = None) -> Iterator[str]:
        payload = {
            "model": self.endpoint.model,
            "messages": messages,
            "stream": True,
            "max_tokens": self.config.max_new_tokens,
            "temperature": self.config.temperature,
        }
        try:
            response = self._open(payload)
        except httpx.HTTPStatusError as exc:
            raise GenerationError(f"endpoint answered HTTP {exc.response.status_code}") from exc
        except httpx.HTTPError as exc:
            raise GenerationError(f"endpoint unreachable: {type(exc).__name__}") from exc
        try:
            for line in response.iter_lines():
                if stop is not None and stop.is_set():
                    break
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                choices = json.loads(data).get("choices") or [{}]
                piece = (choices[0].get("delta") or {}).get("content")
                if piece:
                    yield piece
        except (httpx.HTTPError, json.JSONDecodeError) as exc:
            raise GenerationError(f"endpoint stream broken: {type(exc).__name__}") from exc
        finally:
            response.close()
