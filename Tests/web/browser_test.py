#!/usr/bin/env python3
"""The web page in a real browser: Debian's headless Chromium driven by Selenium against `restore serve` on
127.0.0.1 (started and stopped here by its process id). Uploads a bundled photo, runs a fast ×4 job while
watching the progress, checks the result, moves the before/after slider, downloads the PNG, paints a mask
for a fill-holes job, and watches a slower job's progress advance. Screenshots go to .build/web-screenshots/.
Run by `make test-web` (which `make test` calls); exits non-zero on the first failure."""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

repo = Path(__file__).resolve().parents[2]
restore = repo / ".build/release/restore"
shots = repo / ".build/web-screenshots"
shots.mkdir(parents=True, exist_ok=True)
photo = repo / "Assets/photos/chelsea-64.png"
downloads = Path(tempfile.mkdtemp(prefix="restore-web-downloads-"))


def check(condition, message):
    if not condition:
        raise AssertionError(message)
    print("ok:", message)


server = subprocess.Popen([str(restore), "serve", "--port", "0"], stderr=subprocess.PIPE, text=True)
driver = None
try:
    url = None
    deadline = time.time() + 60
    while time.time() < deadline and url is None:
        line = server.stderr.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+/)", line or "")
        if match:
            url = match.group(1)
    check(url is not None, "the service started and said where")

    options = webdriver.ChromeOptions()
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--disable-extensions", "--metrics-recording-only", "--window-size=1280,1000",
                 # nothing outside this machine: every host name fails to resolve except loopback
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]:
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False})
    service = webdriver.ChromeService(executable_path="/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    wait = WebDriverWait(driver, 120)
    driver.get(url)
    check("restore" in driver.title, "the page loads")
    problems = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE" and "favicon" not in e.get("message", "")]
    check(not problems, "no console errors (CSP violations would show here): %s" % problems)

    # 1. ×4 on the bundled photo
    driver.find_element(By.ID, "file").send_keys(str(photo))
    wait.until(lambda d: d.find_element(By.ID, "run").is_enabled())
    check("64×64" in driver.find_element(By.ID, "photo-info").text, "the photo is shown with its size")
    Select(driver.find_element(By.ID, "task")).select_by_value("upscale:4")
    driver.find_element(By.ID, "run").click()
    wait.until(lambda d: d.find_element(By.ID, "result-panel").is_displayed())
    driver.save_screenshot(str(shots / "1-upscale-result.png"))
    report = driver.find_element(By.ID, "report").text
    check("diffir" in report and "256×256" in report, "the report is shown in words: " + report[:120])
    clip = driver.find_element(By.ID, "after-clip")
    before = clip.size["width"]
    slider = driver.find_element(By.ID, "slider")
    for _ in range(20):
        slider.send_keys("\ue014")  # arrow right
    time.sleep(0.2)
    check(clip.size["width"] > before, "the slider reveals more of the result (%d → %d px)" % (before, clip.size["width"]))
    zoom = driver.find_element(By.ID, "zoom")
    for _ in range(4):
        zoom.send_keys("\ue014")
    driver.save_screenshot(str(shots / "2-slider-zoom.png"))
    driver.find_element(By.ID, "download").click()
    deadline = time.time() + 30
    while time.time() < deadline and not [p for p in downloads.iterdir() if p.suffix == ".png"]:
        time.sleep(0.2)
    files = [p for p in downloads.iterdir() if p.suffix == ".png"]
    check(files and files[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "the download is a PNG")

    # 2. fill holes: paint a mask on the photo
    Select(driver.find_element(By.ID, "task")).select_by_value("inpaint")
    driver.find_element(By.ID, "steps").send_keys("5")
    canvas = driver.find_element(By.ID, "mask-canvas")
    ActionChains(driver).move_to_element_with_offset(canvas, -20, -20).click_and_hold().move_by_offset(30, 10).move_by_offset(10, 25).release().perform()
    driver.find_element(By.ID, "run").click()
    # the new job's own outcome: its report (DDNM), or an error next to a control
    wait.until(lambda d: (d.find_element(By.ID, "result-panel").is_displayed() and "ddnm" in d.find_element(By.ID, "report").text)
               or d.find_element(By.ID, "error-run").text or d.find_element(By.ID, "error-mask").text)
    driver.save_screenshot(str(shots / "3-inpaint.png"))
    check(driver.find_element(By.ID, "error-mask").text == "" and "ddnm" in driver.find_element(By.ID, "report").text,
          "the painted mask was filled by DDNM")

    # 2b. the same task with another method: DreamClean* with the painted mask
    Select(driver.find_element(By.ID, "method")).select_by_value("dreamclean")
    check("DreamClean" in driver.find_element(By.ID, "method-hint").text, "the method choice is explained")
    driver.find_element(By.ID, "run").click()
    wait.until(lambda d: (d.find_element(By.ID, "result-panel").is_displayed() and "dreamclean" in d.find_element(By.ID, "report").text)
               or d.find_element(By.ID, "error-run").text or d.find_element(By.ID, "error-mask").text)
    check("dreamclean" in driver.find_element(By.ID, "report").text,
          "the chosen method ran" + "".join(": " + driver.find_element(By.ID, e).text for e in ("error-run", "error-mask") if driver.find_element(By.ID, e).text))

    # 3. a slower job (DreamClean, 30 + 30×2 evaluations): the progress advances, then the result appears
    Select(driver.find_element(By.ID, "task")).select_by_value("dejpeg")
    steps = driver.find_element(By.ID, "steps")
    steps.clear()
    steps.send_keys("30")
    driver.find_element(By.ID, "run").click()
    seen = set()
    deadline = time.time() + 120
    while time.time() < deadline:
        value = driver.execute_script("return document.getElementById('progress').value")
        seen.add(value)
        if driver.find_element(By.ID, "result-panel").is_displayed() and "dreamclean" in driver.find_element(By.ID, "report").text:
            break
        time.sleep(0.05)
    driver.save_screenshot(str(shots / "4-dejpeg.png"))
    check(len([v for v in seen if v > 0]) >= 3, "the progress bar advanced through %d values" % len(seen))
    check("dreamclean" in driver.find_element(By.ID, "report").text, "the JPEG-artifact result is reported")
    print("browser test passed; screenshots in", shots)
finally:
    if driver is not None:
        driver.quit()
    os.kill(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.kill(server.pid, signal.SIGKILL)
