"""A Python client for the gateway, with the ``IndexTTSClient`` methods of the IndexTTS service API
(v1) and a few more.

Its methods (``generate_speech``, ``get_workflow_status``) return the response body as a dict,
error bodies included, exactly as the workflow API's own client did. The additions (``submit``,
``wait``, ``download_audio``) raise :class:`GatewayError` on an error body.

    client = IndexTTSClient("http://localhost:8788")
    result = client.generate_speech("Hello, this is a test.", "/share/workflows/output/test.wav")
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tts_api.constants import TaskName

DEFAULT_VIDEO_PATH = "/app/videos/api_request.mp4"  # the workflow API's own client sends this placeholder


class GatewayError(RuntimeError):
    """An error body from the gateway: the workflow API's ``error_code`` and message."""

    def __init__(self, body: dict[str, Any], http_status: int) -> None:
        self.body = body
        self.http_status = http_status
        self.error_code: str = body.get("error_code", "PROCESSING_ERROR")
        super().__init__(f"{self.error_code} (HTTP {http_status}): {body.get('error', body)}")


def _request_body(chain: list[TaskName], config: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "video_path": DEFAULT_VIDEO_PATH,
        "workflow_config": {"workflow_chain": [task.value for task in chain]},
    }
    if config is not None:
        body["workflow_config"]["indextts_config"] = config
    return body


class IndexTTSClient:
    def __init__(
        self, base_url: str = "http://localhost:8788", *, api_key: str | None = None, timeout: float = 330.0
    ) -> None:
        headers = {"X-API-Key": api_key} if api_key else {}
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> IndexTTSClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the workflow API's methods -------------------------------------------------------------

    def generate_speech(self, text: str, output_path: str, **kwargs: Any) -> dict[str, Any]:
        """生成语音: synthesize and wait for the result (any field of the request as a keyword)."""
        config = {"text": text, "output_path": output_path, **kwargs}
        return self._post(_request_body([TaskName.GENERATE_SPEECH], config))

    def get_workflow_status(self, workflow_id: str) -> dict[str, Any]:
        """查询工作流状态."""
        body: dict[str, Any] = self._http.get(f"/v1/workflows/status/{workflow_id}").json()
        return body

    # --- the other tasks -----------------------------------------------------------------------

    def health_check(self) -> dict[str, Any]:
        return self._post(_request_body([TaskName.HEALTH_CHECK], None))

    def get_model_info(self) -> dict[str, Any]:
        return self._post(_request_body([TaskName.GET_MODEL_INFO], None))

    def list_voice_presets(self) -> dict[str, Any]:
        return self._post(_request_body([TaskName.LIST_VOICE_PRESETS], None))

    # --- asynchronous use ----------------------------------------------------------------------

    def submit(self, chain: list[TaskName], config: dict[str, Any] | None = None) -> str:
        """Create a workflow without waiting; return its id."""
        response = self._http.post(
            "/v1/workflows", params={"async": "true"}, json=_request_body(chain, config)
        )
        body = self._checked(response)
        workflow_id: str = body["workflow_id"]
        return workflow_id

    def wait(
        self,
        workflow_id: str,
        *,
        poll_seconds: float = 0.5,
        timeout: float = 3600.0,
        on_status: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the workflow finishes; return its result; raise :class:`GatewayError` if it failed."""
        deadline = time.monotonic() + timeout
        while True:
            status = self._checked(self._http.get(f"/v1/workflows/status/{workflow_id}"))
            if on_status is not None:
                on_status(status)
            if status["status"] in {"succeeded", "failed", "cancelled"}:
                return self._checked(self._http.get(f"/v1/workflows/{workflow_id}"))
            if time.monotonic() >= deadline:
                raise TimeoutError(f"workflow {workflow_id} still {status['status']} after {timeout} s")
            time.sleep(poll_seconds)

    def download_audio(self, workflow_id: str, destination: Path) -> Path:
        """Save the workflow's WAV to ``destination``."""
        with self._http.stream("GET", f"/v1/workflows/{workflow_id}/audio") as response:
            if response.status_code != 200:
                response.read()
                self._checked(response)
            destination.parent.mkdir(parents=True, exist_ok=True)
            with destination.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
        return destination

    # --- plumbing ------------------------------------------------------------------------------

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = self._http.post("/v1/workflows", json=body).json()
        return answer

    @staticmethod
    def _checked(response: httpx.Response) -> dict[str, Any]:
        body: dict[str, Any] = response.json()
        if response.status_code >= 400 or body.get("status") == "error":
            raise GatewayError(body, response.status_code)
        return body
