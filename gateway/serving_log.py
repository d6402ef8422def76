"""The logger of the app, its routes and its handlers: one name, ``gateway.app``, for every line."""

from __future__ import annotations

import logging

log = logging.getLogger("gateway.app")
