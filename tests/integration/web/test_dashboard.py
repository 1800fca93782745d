"""The dashboard in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.rtsp_server import RtspServer, wait_until

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
EVIL = "<img src=x onerror=alert(1)>"
KEY = "dashboard-test-key"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,900")


def _missing(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why} (scripts/test-packages.txt and scripts/test-requirements.txt install it)")
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        _missing("chromium and chromium-driver are not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_script_timeout(20)
    yield driver
    driver.quit()


def js(driver, script: str, *args):
    return driver.execute_script(script, *args)


def cards(driver) -> dict[str, dict]:
    """What the grid shows, read from the DOM: id -> name, badge, whether its image loaded."""
    return js(driver, """
        const out = {};
        for (const c of document.querySelectorAll('#grid .card')) {
          const img = c.querySelector('img.snap');
          out[c.dataset.cameraId] = {name: c.querySelector('.name').textContent,
                                     badge: c.querySelector('.badge').textContent,
                                     loaded: img.complete && img.naturalWidth > 0};
        }
        return out;""")


def no_alert(driver) -> bool:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        _ = driver.switch_to.alert
    except NoAlertPresentException:
        return True
    return False


def use_key(driver, key: str) -> None:
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.ID, "key")
    field.clear()
    field.send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "#key-form button").click()


def test_grid_shows_every_camera_live_and_status_changes_without_reload(rtsp, own_rtsp, service_factory, browser):
    svc = service_factory({
        "http": {"api_key": KEY},
        "cameras": [{"id": "evil", "url": own_rtsp.url("cam"), "name": EVIL},
                    {"id": "yard", "url": rtsp.url("cam"), "name": "Yard & gate"}],
    })
    driver = browser
    driver.get(svc.base + "/")
    # Without the key the page says what it needs instead of failing silently.
    wait_until(lambda: "API key" in js(driver, "return document.getElementById('message').textContent"), 15)
    use_key(driver, KEY)
    wait_until(lambda: set(cards(driver)) == {"evil", "yard"}, 20)
    wait_until(lambda: all(c["loaded"] and c["badge"] == "active" for c in cards(driver).values()), 45)

    # The name is shown as text: no alert, no element injected, CSP violations none.
    shown = cards(driver)
    assert shown["evil"]["name"] == EVIL and shown["yard"]["name"] == "Yard & gate"
    assert js(driver, "return document.querySelectorAll('#grid .card .name *').length") == 0
    assert js(driver, "return document.querySelectorAll('img').length") == 3  # two cards + the (idle) live view
    assert no_alert(driver)

    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "dashboard-grid.png"))

    js(driver, "window.__notReloaded = true;")
    kill = getattr(own_rtsp, "kill", None) or own_rtsp.stop
    kill()
    wait_until(lambda: cards(driver)["evil"]["badge"] in ("connecting", "error"), 45)
    assert js(driver, "return window.__notReloaded === true")  # updated in place, not by a reload
    assert cards(driver)["yard"]["badge"] == "active"
    driver.save_screenshot(str(ARTIFACTS / "dashboard-camera-down.png"))
    assert no_alert(driver)


def test_add_and_remove_a_camera_and_open_its_page(rtsp, service_factory, browser):
    from selenium.webdriver.common.by import By

    svc = service_factory({"http": {"api_key": KEY}})
    driver = browser
    driver.get(svc.base + "/")
    use_key(driver, KEY)
    wait_until(lambda: js(driver, "return !document.getElementById('empty').hidden"), 15)

    driver.find_element(By.ID, "add-url").send_keys(rtsp.url("hevc"))
    driver.find_element(By.ID, "add-name").send_keys(EVIL + " hevc")
    driver.find_element(By.CSS_SELECTOR, "#add-form button").click()
    wait_until(lambda: len(cards(driver)) == 1, 15)
    cam_id = next(iter(cards(driver)))
    assert [c["id"] for c in svc.get("/cameras", headers={"X-API-Key": KEY}).json()] == [cam_id]
    wait_until(lambda: cards(driver)[cam_id]["loaded"], 45)
    assert cards(driver)[cam_id]["name"] == EVIL + " hevc"

    # The camera page: facts, status history, and a live view.
    driver.get(f"{svc.base}/#camera/{cam_id}")
    wait_until(lambda: js(driver, "return document.querySelectorAll('#cam-history li').length") >= 2, 15)
    assert js(driver, "return document.getElementById('cam-name').textContent") == EVIL + " hevc"
    wait_until(lambda: js(driver, "const i = document.getElementById('cam-live');"
                                  "return i.complete && i.naturalWidth > 0"), 20)
    driver.save_screenshot(str(ARTIFACTS / "dashboard-camera-page.png"))

    driver.get(svc.base + "/#")
    wait_until(lambda: cam_id in cards(driver), 15)
    remove = driver.find_element(By.CSS_SELECTOR, f'.card[data-camera-id="{cam_id}"] button.remove')
    remove.click()  # arms the button
    assert cam_id in cards(driver)
    remove.click()  # confirms
    wait_until(lambda: cam_id not in cards(driver), 15)
    assert svc.get("/cameras", headers={"X-API-Key": KEY}).json() == []
    assert no_alert(driver)


def test_camera_page_plays_mjpeg_and_leaving_it_frees_the_viewer(rtsp, service_factory, browser):
    svc = service_factory({"cameras": [{"id": "yard", "url": rtsp.url("cam")}]})
    driver = browser
    driver.get(svc.base + "/#camera/yard")
    viewers = 'rtsp2jpg_stream_viewers{camera="yard"} '
    wait_until(lambda: js(driver, "const i = document.getElementById('cam-live');"
                                  "return i.src.includes('/stream/yard') && i.complete && i.naturalWidth > 0"), 30)
    assert viewers + "1" in svc.get("/metrics").body.decode()
    driver.get(svc.base + "/#")
    wait_until(lambda: viewers + "0" in svc.get("/metrics").body.decode(), 30)


def test_camera_page_shows_both_streams_of_a_camera_with_a_sub_stream(service_factory, browser):
    server = RtspServer(streams={"main": "960x540@15:h264", "sub": "320x180@15:h264"}).start()
    try:
        svc = service_factory({"cameras": [{"id": "yard", "streams": {"main": server.url("main"),
                                                                       "sub": server.url("sub")}}]})
        driver = browser
        driver.get(svc.base + "/#camera/yard")

        def both_shown() -> bool:
            """The page reads /status when it opens: reload it until both streams have a picture."""
            text = js(driver, "return document.getElementById('cam-facts').textContent")
            if "main stream960x540, active" in text and "sub stream320x180, active" in text:
                return True
            driver.refresh()
            return False

        wait_until(both_shown, 30, interval=1.0)
        # The live view is the sub stream's (a continuous reader), so it is 320 wide, not 960.
        wait_until(lambda: js(driver, "const i = document.getElementById('cam-live');"
                                      "return i.complete && i.naturalWidth === 320"), 30)
    finally:
        server.stop()


def test_camera_page_falls_back_to_snapshots_when_the_stream_needs_the_key(rtsp, service_factory, browser):
    svc = service_factory({"http": {"api_key": KEY, "protect_snapshots": True},
                           "cameras": [{"id": "yard", "url": rtsp.url("cam")}]})
    driver = browser
    driver.get(svc.base + "/")
    use_key(driver, KEY)
    wait_until(lambda: cards(driver).get("yard", {}).get("loaded"), 45)  # grid snapshots carry the key
    driver.get(svc.base + "/#camera/yard")
    wait_until(lambda: js(driver, "const i = document.getElementById('cam-live');"
                                  "return i.src.startsWith('blob:') && i.complete && i.naturalWidth > 0"), 30)
    assert "showing snapshots" in js(driver, "return document.getElementById('cam-live-hint').textContent")


def test_grid_shows_a_degraded_picture_and_privacy_masks(rtsp, service_factory, browser):
    """A black camera's card says `degraded` and why; a masked camera's picture in the grid is masked."""
    from tests.support.rtsp_server import RtspServer

    black = RtspServer(streams={"black": "320x180@15:black"}).start()
    try:
        svc = service_factory({
            "health": {"interval_sec": 0.5},
            "cameras": [{"id": "dark", "url": black.url("black")},
                        {"id": "yard", "url": rtsp.url("cam"),
                         "privacy_masks": [[[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]]}],
        })
        driver = browser
        driver.get(svc.base + "/")
        wait_until(lambda: cards(driver).get("dark", {}).get("badge") == "degraded", 45)
        error = js(driver, "return document.querySelector('.card[data-camera-id=\"dark\"] .error-text').textContent")
        assert error.startswith("uniform picture")
        wait_until(lambda: "1 degraded" in js(driver, "return document.getElementById('summary').textContent"), 15)
        wait_until(lambda: cards(driver).get("yard", {}).get("loaded"), 45)
        # The right half, as the browser decoded it: black; the left half: the scene.
        halves = js(driver, """
            const img = document.querySelector('.card[data-camera-id="yard"] img.snap');
            const c = document.createElement('canvas');
            c.width = img.naturalWidth; c.height = img.naturalHeight;
            const g = c.getContext('2d');
            g.drawImage(img, 0, 0);
            const mean = (x0, x1) => {
              const d = g.getImageData(x0, 10, x1 - x0, c.height - 20).data;
              let sum = 0; for (let i = 0; i < d.length; i += 4) sum += d[i] + d[i + 1] + d[i + 2];
              return sum / (d.length / 4) / 3;
            };
            return [mean(5, Math.floor(c.width / 2) - 5), mean(Math.ceil(c.width / 2) + 5, c.width - 5)];""")
        assert halves[0] > 50 and halves[1] < 5, halves
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "dashboard-degraded-and-masked.png"))
    finally:
        black.stop()


ATTACK_PAGE = """<!doctype html><html><body>
<iframe name="sink"></iframe>
<form id="form" method="POST" action="{base}/register" enctype="text/plain" target="sink">
<input type="hidden" name='{{"rtsp_url": "rtsp://127.0.0.1:9/evil-form", "x": "' value='"}}'></form>
<script>
const base = "{base}";
window.sent = Promise.allSettled([
  fetch(base + "/unregister/{cam_id}", {{mode: "no-cors", method: "POST"}}),
  fetch(base + "/register", {{mode: "no-cors", method: "POST", headers: {{"Content-Type": "text/plain"}},
                              body: JSON.stringify({{rtsp_url: "rtsp://127.0.0.1:9/evil-fetch"}})}}),
]).then(() => {{ document.getElementById("form").submit(); return "sent"; }});
</script></body></html>"""


def registered(svc) -> list[tuple[str, str, str]]:
    """What a hostile page would change: the cameras and their names and URLs (their status moves on
    its own: the kept camera's unreachable URL goes from connecting to error at any moment)."""
    return sorted((cam["id"], cam["name"], cam["url"]) for cam in svc.get("/cameras").json())


def test_a_page_from_another_origin_cannot_register_or_unregister(service_factory, browser, tmp_path):
    """A kiosk browser on the device opens a hostile page: its text/plain form POST (a valid JSON body)
    and its no-cors fetches reach the service, and are refused (403: Origin / Sec-Fetch-Site)."""
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    svc = service_factory({})  # no API key: loopback clients may change things
    cam_id = svc.post("/register", {"rtsp_url": "rtsp://127.0.0.1:9/kept", "name": "kept"}).json()["id"]
    before = registered(svc)
    (tmp_path / "attack.html").write_text(ATTACK_PAGE.format(base=svc.base, cam_id=cam_id))
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # localhost:<other> is cross-site to 127.0.0.1:<svc>; 127.0.0.1:<other> is same-site, another origin.
        for n, host in enumerate(("localhost", "127.0.0.1"), start=1):
            browser.get(f"http://{host}:{server.server_address[1]}/attack.html")
            assert browser.execute_async_script("window.sent.then(arguments[0])") == "sent"
            wait_until(lambda n=n: svc.log().count("refused cross-site") >= 3 * n, 15)
    finally:
        server.shutdown()
        server.server_close()
    assert registered(svc) == before
    assert svc.log().count("refused cross-site POST '/register'") == 4
    assert svc.log().count(f"refused cross-site POST '/unregister/{cam_id}'") == 2
