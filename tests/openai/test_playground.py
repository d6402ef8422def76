"""The playground page in a real headless browser (Debian's chromium through Selenium) on the local
stack: it loads without the API key, speaks streamed audio with the key typed in, and shows the
error OpenAI's body gives when the key is wrong."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.local.stack import Stack, running_stack

KEY = "playground-key"
BROWSER, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("playground"), "--api-key", KEY) as running:
        yield running


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not (Path(BROWSER).exists() and shutil.which(DRIVER)):
        pytest.fail(f"{BROWSER} and {DRIVER} are needed: `make browser` installs Debian's chromium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--autoplay-policy=no-user-gesture-required",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(browser: Any, state: str, seconds: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run: dict[str, Any] = browser.execute_script("return window.playground")
        if run["state"] == state or run["state"] == "failed":
            return run
        time.sleep(0.2)
    raise AssertionError(f"the page never reached {state}: {run}")


def test_the_page_is_served_without_the_key_and_the_home_leads_there(stack: Stack) -> None:
    with httpx.Client(base_url=stack.url) as http:
        page = http.get("/playground")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "/v1/audio/speech" in page.text
        assert http.get("/").headers["location"] == "/playground"
        assert http.get("/v1/models").status_code == 401  # the API itself still wants the key


def test_the_page_plays_streamed_speech_and_shows_a_refusal(stack: Stack, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{stack.url}/playground")
    assert browser.title == "IndexTTS playground"
    browser.find_element(By.ID, "key").send_keys("wrong")
    browser.find_element(By.ID, "speak").click()
    refused = wait_for(browser, "failed")
    assert refused["state"] == "failed"
    assert "API key" in refused["error"]
    assert "API key" in browser.find_element(By.ID, "status").text

    key = browser.find_element(By.ID, "key")
    key.clear()
    key.send_keys(KEY)
    text = browser.find_element(By.ID, "text")
    text.click()  # the key field loses focus: the page lists the voices with the key
    deadline = time.monotonic() + 10
    while not browser.execute_script("return window.playground.voices"):
        assert time.monotonic() < deadline, "the voices were never listed"
        time.sleep(0.1)
    assert browser.execute_script("return window.playground.voices") == ["default"]
    options = browser.find_elements(By.CSS_SELECTOR, "#voices option")
    assert [option.get_attribute("value") for option in options] == ["default"]
    text.clear()
    text.send_keys("The first sentence. The second sentence. And a third one to end.")
    browser.find_element(By.ID, "speak").click()
    played = wait_for(browser, "done")
    assert played["state"] == "done", played
    assert played["samples"] / 24_000 > 1.5  # seconds of speech received and scheduled
    assert played["chunks"] >= 1
    assert "done" in browser.find_element(By.ID, "status").text


def test_the_page_adds_a_voice_and_speaks_in_it(stack: Stack, browser: Any, tmp_path: Path) -> None:
    import numpy as np
    import soundfile
    from selenium.webdriver.common.by import By

    recording = tmp_path / "my voice.wav"
    soundfile.write(recording, 0.3 * np.sin(2 * np.pi * 220 * np.arange(2 * 16_000) / 16_000), 16_000)
    browser.get(f"{stack.url}/playground")
    browser.find_element(By.ID, "key").send_keys(KEY)
    browser.find_element(By.ID, "voice-name").send_keys("Not A Name")
    browser.find_element(By.ID, "voice-file").send_keys(str(recording))
    browser.find_element(By.ID, "upload").click()
    refused = wait_for(browser, "uploaded")
    assert refused["state"] == "failed"
    assert "not a voice name" in refused["error"]

    name = browser.find_element(By.ID, "voice-name")
    name.clear()
    name.send_keys("page-voice")
    browser.find_element(By.ID, "upload").click()
    added = wait_for(browser, "uploaded")
    assert added["state"] == "uploaded", added
    assert "page-voice" in added["voices"]
    assert browser.find_element(By.ID, "voice").get_attribute("value") == "page-voice"
    assert "2.0 s" in browser.find_element(By.ID, "status").text
    with httpx.Client(base_url=stack.url, headers={"X-API-Key": KEY}) as http:
        listed = {voice["name"]: voice for voice in http.get("/v1/audio/voices").json()["data"]}
    assert listed["page-voice"]["duration_seconds"] == 2.0

    browser.find_element(By.ID, "speak").click()
    played = wait_for(browser, "done")
    assert played["state"] == "done", played
    assert played["samples"] > 0
