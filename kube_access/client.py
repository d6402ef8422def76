"""A configured Kubernetes API client, and the API server's refusals as plain exceptions."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client import ApiException

T = TypeVar("T")


class NotFoundError(Exception):
    """The object does not exist (HTTP 404)."""


class ConflictError(Exception):
    """The object exists already, or changed since it was read (HTTP 409)."""


def api_client(api_url: str = "") -> client.ApiClient:
    """A Kubernetes API client: in-cluster credentials, else KUBECONFIG; ``api_url``: that server,
    without credentials (kubectl proxy, an emulated API server)."""
    configuration = client.Configuration()
    if api_url:
        configuration.host = api_url.rstrip("/")
    else:
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except config.ConfigException:
            # KUBECONFIG read now: the client's default is the value it had when it was imported.
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=os.environ.get("KUBECONFIG") or None, client_configuration=configuration
            )
    return client.ApiClient(configuration)


@contextmanager
def refusals() -> Iterator[None]:
    """The API server's 404 and 409 as this module's errors, around a synchronous call."""
    try:
        yield
    except ApiException as exc:
        if exc.status == 404:
            raise NotFoundError(exc.reason or "not found") from None
        if exc.status == 409:
            raise ConflictError(exc.reason or "conflict") from None
        raise


async def call(method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``method(*args, **kwargs)`` off the event loop; 404 and 409 raised as this module's errors."""
    with refusals():
        return await asyncio.to_thread(method, *args, **kwargs)
