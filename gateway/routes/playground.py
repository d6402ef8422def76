"""The playground: one small page (``GET /playground``, and ``/`` leads there) to type text, pick a
voice, a format and a speed, and hear the speech as it streams in. Plain HTML and a few lines of
script; it holds no secret, so it is served without the API key and asks for one when needed."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse

router = APIRouter()

PAGE = "playground.html"


def page() -> str:
    return resources.files("gateway").joinpath("static", PAGE).read_text(encoding="utf-8")


@router.get("/playground", include_in_schema=False)
async def playground() -> HTMLResponse:
    return HTMLResponse(page(), headers={"Cache-Control": "no-cache"})


@router.get("/", include_in_schema=False)
async def home() -> RedirectResponse:
    return RedirectResponse("/playground")
