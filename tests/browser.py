"""Headless Chromium for the report tests, driven by Selenium and chromium-driver.

``browser()`` starts Debian's ``chromium`` with its ``chromedriver`` (``apt-get install
chromium chromium-driver``), or returns ``(None, reason)`` when one of them, or selenium,
is missing, so that a test can skip saying why.  Selenium is imported here, lazily,
so the module imports without it.

Run as a script, it writes the README's screenshots of a report:

    python tests/browser.py REPORT.html OUT.png [SELECTOR]

(clicking the element the CSS ``SELECTOR`` names first: ``'.gnode[data-node="5"]'`` is
graph node %5, ``'.kcard[data-kernel="k2_..."]'`` a kernel).
"""
import shutil
import sys
from pathlib import Path

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
DRIVER = ("chromedriver",)
WINDOW = (1600, 1000)


def _which(names):
    return next((path for path in map(shutil.which, names) if path), None)


def browser(window=WINDOW):
    """``(driver, "")``, or ``(None, reason)`` when no headless Chromium can be had."""
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None, "selenium is not installed (pip install selenium)"
    binary, driver = _which(CHROMIUM), _which(DRIVER)
    if binary is None or driver is None:
        return None, "no chromium and chromedriver on PATH (apt-get install chromium chromium-driver)"
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={window[0]},{window[1]}", "--hide-scrollbars"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        return webdriver.Chrome(service=Service(driver), options=options), ""
    except WebDriverException as e:
        return None, f"chromium did not start: {str(e).splitlines()[0]}"


def errors(driver):
    """The console messages of level SEVERE since the last call (errors, failed loads)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def click(driver, selector):
    """Click the first element matching the CSS ``selector`` (scrolled into view first)."""
    from selenium.webdriver.common.by import By

    element = driver.find_element(By.CSS_SELECTOR, selector)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center', inline: 'center'});",
                          element)
    element.click()  # a real click at the element's centre, as a user's
    return element


def marked(driver, selector, cls):
    """The ``data-*`` attributes of the elements matching ``selector`` that have class ``cls``."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]))"
        ".filter(e => e.classList.contains(arguments[1])).map(e => Object.assign({}, e.dataset));",
        selector, cls)


def screenshot(report, png, selector=None):
    """Open ``report`` and save a screenshot of its top to ``png`` (after clicking the
    element ``selector`` names); the console errors."""
    driver, reason = browser()
    if driver is None:
        raise SystemExit(reason)
    try:
        driver.get(Path(report).resolve().as_uri())
        if selector is not None:
            click(driver, selector)
            driver.execute_script("window.scrollTo(0, 0);")
        driver.save_screenshot(str(png))
        return errors(driver)
    finally:
        driver.quit()


if __name__ == "__main__":
    problems = screenshot(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
    print("\n".join(problems) or f"wrote {sys.argv[2]}")
