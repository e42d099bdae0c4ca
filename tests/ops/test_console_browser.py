"""The web console in headless Chromium (Debian's chromium + chromedriver, Selenium).

Each test drives the real page against a real server: znodes made through the protocol
(kazoo) appear on the page, edits on the page are seen through the protocol, ACLs refuse
with a clear message, recursive delete shows its count, charts fill, and the ensemble
view through a follower shows one leader and two followers.

``ZABBY_UPDATE_SCREENSHOT=1`` also writes docs/console.png (a populated tree).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest
from console_support import ConsoleEnsemble, ConsoleServer
from kazoo.security import ACL, Id, Permissions, make_digest_acl

from zabby.testing.pytest_plugin import kazoo_client, require_tool

pytestmark = pytest.mark.timeout(180)

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DOCS = Path(__file__).resolve().parents[2] / "docs"
WAIT = 15.0


@pytest.fixture(scope="module")
def browser():
    require_tool(CHROMIUM, "chromium")
    require_tool(CHROMEDRIVER, "chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="zabby-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,900",
                 f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    # chromedriver in a process group of its own, so chromium goes with it at the end
    service = Service(CHROMEDRIVER, popen_kw={"start_new_session": True})
    driver = None
    try:
        driver = webdriver.Chrome(service=service, options=opts)
        driver.set_page_load_timeout(30)
        driver.set_script_timeout(30)
        yield driver
    finally:
        pid = service.process.pid if service.process is not None else None
        if driver is not None:
            try:
                driver.quit()
            except Exception:  # noqa: BLE001 - the group is killed below anyway
                pass
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ConsoleServer(tmp_path_factory.mktemp("console-ui"))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def zk(server):
    client = kazoo_client(server.hosts)
    try:
        yield client
    finally:
        client.stop()
        client.close()


# ------------------------------------------------------------------ helpers
def wait_for(fn, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = fn()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - the page is still settling
            last = e
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last error: {last!r})")


def by_id(driver, id_):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, id_)


def node_row(driver, path: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f'#tree li.node[data-path="{path}"] > .row')


def open_console(driver, url: str, auth: str = "") -> None:
    driver.get(url + "/")
    driver.execute_script(
        "arguments[0] ? sessionStorage.setItem('zabby.auth', arguments[0])"
        " : sessionStorage.removeItem('zabby.auth');", auth)
    driver.get(url + "/")
    wait_for(lambda: node_row(driver, "/zookeeper"), "the root's children")


def expand(driver, path: str) -> None:
    """Open every ancestor of path and path itself, clicking the toggles (retried: the
    page may rebuild the tree meanwhile, e.g. after an identity change)."""
    parts = [p for p in path.split("/") if p]

    def ensure_open(cur: str) -> bool:
        li = node_row(driver, cur).find_element("xpath", "..")
        if "open" in (li.get_attribute("class") or ""):
            return True
        li.find_element("css selector", ":scope > .row > .toggle").click()
        time.sleep(0.3)
        return False

    for i in range(len(parts) + 1):
        cur = "/" + "/".join(parts[:i])
        wait_for(lambda cur=cur: ensure_open(cur), f"{cur} expanded")


def select(driver, path: str) -> None:
    expand(driver, path.rsplit("/", 1)[0] or "/")

    def click() -> bool:
        node_row(driver, path).click()
        return by_id(driver, "detail-path").text == path or (time.sleep(0.2) or False)

    wait_for(click, f"{path} selected")


def message(driver) -> str:
    return by_id(driver, "message").text


def stat_value(driver, key: str) -> str:
    """The stat table's value for `key`. The page draws the table again after every
    load and save, so a cell found may go stale before it is read: read it again."""
    from selenium.webdriver.common.by import By

    return wait_for(lambda: driver.find_element(
        By.CSS_SELECTOR, f'#stat-table tr[data-key="{key}"] td:last-child').text,
        f"the stat table's {key}")


# -------------------------------------------------------------------- tests
def test_znodes_created_through_the_protocol_appear_on_the_page(browser, server, zk):
    zk.create("/app/config/db", json.dumps({"host": "db1", "port": 5432}).encode(),
              makepath=True)
    zk.create("/app/config/flags", b"beta=on")
    zk.create("/app/workers/w-1", b"\x00\x01\xfe", makepath=True)
    zk.create("/app/workers/w-2", b"", ephemeral=True)
    zk.create("/jobs/queue-0000000001", b"payload", makepath=True)
    open_console(browser, server.url)
    assert node_row(browser, "/app").text.startswith("▸app")
    select(browser, "/app/config/db")
    view = by_id(browser, "data-view").text
    assert json.loads(view) == {"host": "db1", "port": 5432} and '\n  "host"' in view
    assert stat_value(browser, "version") == "0"
    assert stat_value(browser, "dataLength") == str(zk.exists("/app/config/db").dataLength)
    assert stat_value(browser, "mzxid") == hex(zk.exists("/app/config/db").mzxid)
    assert "world anyone cdrwa" in by_id(browser, "acl-table").text
    by_id(browser, "view-text").click()
    assert by_id(browser, "data-view").text == '{"host": "db1", "port": 5432}'
    select(browser, "/app/workers/w-1")
    by_id(browser, "view-hex").click()
    assert by_id(browser, "data-view").text.startswith("00000000  00 01 fe")
    # binary data is edited as hex
    by_id(browser, "edit-button").click()
    area = by_id(browser, "edit-area")
    assert area.get_attribute("value") == "00 01 fe"
    area.clear()
    area.send_keys("ca fe 00")
    by_id(browser, "edit-save").click()
    wait_for(lambda: "saved /app/workers/w-1" in message(browser), "the hex save")
    assert zk.get("/app/workers/w-1")[0] == b"\xca\xfe\x00"
    assert "ephemeral" in node_row(browser, "/app/workers/w-2").text
    # a node made after the page loaded shows when its parent is opened again
    zk.create("/app/config/late", b"")
    node_row(browser, "/app/config").find_element("css selector", ".toggle").click()
    expand(browser, "/app/config")
    wait_for(lambda: node_row(browser, "/app/config/late"), "the late node")
    # search by prefix
    by_id(browser, "search-input").send_keys("/app/wo")
    by_id(browser, "search-button").click()
    results = wait_for(lambda: by_id(browser, "search-results").text, "search results")
    assert results.split("\n") == ["/app/workers", "/app/workers/w-1", "/app/workers/w-2"]
    if os.environ.get("ZABBY_UPDATE_SCREENSHOT"):
        by_id(browser, "search-input").clear()
        by_id(browser, "search-button").click()
        select(browser, "/app/config/db")
        by_id(browser, "view-json").click()
        DOCS.mkdir(exist_ok=True)
        browser.save_screenshot(str(DOCS / "console.png"))


def test_an_edit_on_the_page_is_seen_through_the_protocol(browser, server, zk):
    zk.create("/edit/me", b"old value", makepath=True)
    open_console(browser, server.url)
    select(browser, "/edit/me")
    by_id(browser, "view-text").click()
    by_id(browser, "edit-button").click()
    area = by_id(browser, "edit-area")
    area.clear()
    area.send_keys("new value from the page")
    by_id(browser, "edit-save").click()
    wait_for(lambda: "saved /edit/me (version 1)" in message(browser), "the save message")
    data, stat = zk.get("/edit/me")
    assert (data, stat.version) == (b"new value from the page", 1)
    # the save message comes first; the table is drawn again from the new stat after it
    wait_for(lambda: stat_value(browser, "version") == "1", "the stat table at version 1")
    # someone else writes meanwhile: the page's save is refused, nothing is lost
    by_id(browser, "edit-button").click()
    zk.set("/edit/me", b"written elsewhere")
    area = by_id(browser, "edit-area")
    area.clear()
    area.send_keys("stale edit")
    by_id(browser, "edit-save").click()
    wait_for(lambda: "version mismatch" in message(browser), "the version-mismatch message")
    assert zk.get("/edit/me")[0] == b"written elsewhere"
    # create a child from the page
    by_id(browser, "create-name").send_keys("child")
    by_id(browser, "create-data").send_keys("made on the page")
    by_id(browser, "create-button").click()
    wait_for(lambda: "created /edit/me/child" in message(browser), "the create message")
    assert zk.get("/edit/me/child")[0] == b"made on the page"


def test_a_user_without_rights_gets_a_clear_refusal(browser, server, zk):
    zk.create("/secure", b"original", acl=[
        make_digest_acl("alice", "secret", all=True),
        ACL(Permissions.READ, Id("world", "anyone"))])
    open_console(browser, server.url, auth="bob:pw")
    assert by_id(browser, "identity-current").text == "digest bob"
    select(browser, "/secure")
    by_id(browser, "view-text").click()
    assert by_id(browser, "data-view").text == "original"
    by_id(browser, "edit-button").click()
    area = by_id(browser, "edit-area")
    area.clear()
    area.send_keys("bob was here")
    by_id(browser, "edit-save").click()
    text = wait_for(lambda: message(browser) if "not allowed" in message(browser) else "",
                    "the refusal")
    assert text == "not allowed: digest user 'bob' may not write /secure (needs WRITE)"
    assert "error" in by_id(browser, "message").get_attribute("class")
    assert zk.get("/secure")[0] == b"original"
    # the right identity, given on the page, may
    by_id(browser, "identity-user").send_keys("alice")
    by_id(browser, "identity-pass").send_keys("secret")
    by_id(browser, "identity-apply").click()
    wait_for(lambda: by_id(browser, "identity-current").text == "digest alice", "alice")
    select(browser, "/secure")
    by_id(browser, "edit-button").click()
    area = by_id(browser, "edit-area")
    area.clear()
    area.send_keys("alice was here")
    by_id(browser, "edit-save").click()
    wait_for(lambda: "saved /secure" in message(browser), "alice's save")
    assert zk.get("/secure")[0] == b"alice was here"


def test_recursive_delete_shows_the_count_and_asks_first(browser, server, zk):
    for p in ("/doomed/a/1", "/doomed/a/2", "/doomed/b", "/doomed/c/x/y"):
        zk.create(p, b"", makepath=True)
    count = 8  # doomed, a, a/1, a/2, b, c, c/x, c/x/y
    open_console(browser, server.url)
    select(browser, "/doomed")
    by_id(browser, "delete-button").click()
    dialog = by_id(browser, "confirm-dialog")
    wait_for(dialog.is_displayed, "the confirmation")
    assert by_id(browser, "confirm-text").text == (
        f"Delete /doomed and everything under it: {count} nodes in all ({count - 1} descendants)?")
    by_id(browser, "confirm-cancel").click()
    wait_for(lambda: message(browser) == "nothing deleted", "the cancel")
    assert zk.exists("/doomed/c/x/y")
    by_id(browser, "delete-button").click()
    wait_for(dialog.is_displayed, "the confirmation again")
    assert by_id(browser, "confirm-ok").text == f"Delete {count} nodes"
    by_id(browser, "confirm-ok").click()
    wait_for(lambda: f"deleted {count} nodes (/doomed)" in message(browser), "the delete")
    assert zk.exists("/doomed") is None
    wait_for(lambda: not browser.find_elements("css selector", '#tree li[data-path="/doomed"]'),
             "/doomed gone from the tree")


def test_live_charts_fill_from_the_metrics(browser, server, zk):
    open_console(browser, server.url)
    by_id(browser, "tab-metrics").click()
    for _ in range(50):
        zk.exists("/")
    wait_for(lambda: browser.find_elements(
        "css selector", '#metric-values tr[data-key="packets_received"]'), "the metric table")
    # at least two samples give a rate, and the canvas has been drawn on
    time.sleep(2.5)
    drawn = browser.execute_script(
        "const c = document.getElementById('chart-throughput');"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n;")
    assert drawn > 500
    assert "received/s" in browser.execute_script("return samples.recv.length + ' received/s'")


def test_ensemble_view_through_a_follower(browser, tmp_path):
    ens = ConsoleEnsemble(tmp_path, 3)
    try:
        leader = ens.leader()
        follower = next(i for i in ens.members if i != leader)
        url = ens.members[follower].url
        client = kazoo_client(ens.hosts)
        try:
            client.create("/ens/a", b"x", makepath=True)
        finally:
            client.stop()
            client.close()
        open_console(browser, url)
        assert node_row(browser, "/ens")
        by_id(browser, "tab-ensemble").click()

        def modes():
            rows = browser.find_elements("css selector", "#ensemble-table tbody tr")
            got = {r.get_attribute("data-id"): r.find_element("css selector", ".mode").text
                   for r in rows}
            return got if len(got) == 3 and "unreachable" not in got.values() else None

        got = wait_for(modes, "three members in the ensemble view", timeout=30)
        assert sorted(got.values()) == ["follower", "follower", "leader"]
        assert got[str(leader)] == "leader"
        assert f"server.{leader} leads" in by_id(browser, "ensemble-summary").text
        assert "(this one)" in browser.find_element(
            "css selector", f'#ensemble-table tr[data-id="{follower}"]').text
        lags = [e.text for e in browser.find_elements("css selector", "#ensemble-table .lag")]
        assert all(lag.isdigit() for lag in lags), lags
    finally:
        ens.stop()
