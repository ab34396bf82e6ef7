"""The web tasklist in a real browser: Debian's Chromium driven by Playwright against `qproc serve`.

The server is the real command, started in an empty folder on a free port of 127.0.0.1 (so its first
run prepares the database), and stopped afterwards. Screenshots go to ``test-artifacts/`` (or
``$QPROC_ARTIFACTS``). All tests share one server and one browser (session fixtures); xdist runs a file in one worker.
"""

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from conftest import ROOT
from engine.demo import DEMO_PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(os.environ.get("QPROC_ARTIFACTS", ROOT / "test-artifacts"))
STARTUP_SECONDS = 60

INTAKE = {"customer": "Hangzhou Precision Motors 杭州精密电机", "contact": "Mr. Zhao, +86 571 5550 1234",
          "product_model": "QX-200 servo drive", "serial_or_lot": "LOT-2026-1107", "quantity_affected": "12",
          "channel": "email", "description": "Drives trip with overcurrent fault E07 after 2 h of operation",
          "customer_request": ["replace", "capa_report"], "customer_deadline": "2026-12-15",
          "complaint_type": "quality"}
# The quality path, our responsibility, effective at the first verification: (user, task, answers);
# approvals and countersignatures by the department heads, the signed ones with their password.
WALK = [
    ("jian.tang", "approve_proceed", {"proceed": "proceed", "approval_comment": "Forward to quality 转质量部"}),
    ("mei.wang", "quality_review", {"facts_verified": "yes", "nonconformity": "confirmed", "responsibility": "ours"}),
    # the CAPA procedure (P3) the complaint calls
    ("mei.wang", "form_team", {"capa_source": "complaint", "team_leader": "Wang Mei 王梅",
                               "team_members": "Huang Bin 黄斌, Song Yang 宋洋"}),
    ("mei.wang", "describe_problem", {"description": "E07 overcurrent after 2 h", "product_model": "QX-200 servo drive",
                                      "quantity_affected": "12", "detected_at": "customer"}),
    ("bin.huang", "contain_problem", {"containment": "Quarantine LOT-2026-1107", "suspect_quantity": "380",
                                      "contained_on": "2026-11-03"}),
    ("bin.huang", "analyse_root_cause", {"root_cause": "Solder voids on the power stage", "failure_cause": "process"}),
    ("bin.huang", "plan_actions", {"corrective_action": "Re-qualify the reflow profile", "action_owner": "Huang Bin",
                                   "planned_completion": "2026-12-05"}),
    ("jian.tang", "approve_capa", {"capa_decision": "approved", "signature_password": DEMO_PASSWORD}),
    ("bin.huang", "implement_capa", {"actions_taken": "Profile re-qualified", "implemented_on": "2026-12-03"}),
    ("mei.wang", "verify_effectiveness", {"effective": "yes", "verification_evidence": "0 voids in 200 boards"}),
    ("bin.huang", "update_standards", {"documents_updated": ["work_instruction", "control_plan"],
                                       "change_requested": "yes"}),
    ("qiang.li", "close_capa", {"closure_summary": "Effective; standards updated", "closed_on": "2026-12-04"}),
    ("qiang.li", "final_disposition", {"disposition": "Replace 12 units; CAPA closed",
                                       "signature_password": DEMO_PASSWORD}),
    ("wei.zhang", "countersign_engineering", {"engineering_agrees": "yes", "signature_password": DEMO_PASSWORD}),
    ("hua.liang", "countersign_rnd", {"rnd_agrees": "yes", "signature_password": DEMO_PASSWORD}),
    ("li.zhou", "reply_customer", {"reply_summary": "Replacement shipped with the 8D report",
                                   "replied_on": "2026-12-08", "capa_report_sent": "yes"}),
    ("li.zhou", "confirm_satisfaction", {"satisfied": "yes", "satisfaction_score": "5",
                                         "customer_representative": "Zhao Lei 赵磊"}),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_serving(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"qproc serve exited with {process.returncode}: {log.read_text()}")
        try:
            urllib.request.urlopen(f"{url}/login", timeout=2).close()
            return
        except OSError:
            time.sleep(0.2)  # polling a starting server, not waiting on engine time
    raise RuntimeError(f"qproc serve did not answer at {url} within {STARTUP_SECONDS} s")


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """`qproc serve` in an empty folder on a free port; yields (base URL, the folder, the file it printed to)."""
    folder = tmp_path_factory.mktemp("empty")
    log = tmp_path_factory.mktemp("log") / "serve.log"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("QPROC_DB", "QPROC_USER", "QPROC_NOW")}
    qproc = Path(sys.executable).with_name("qproc")
    with log.open("w") as out:
        process = subprocess.Popen([str(qproc), "serve", "--host", "127.0.0.1", "--port", str(port)], cwd=folder,
                                   env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(url, process, log)
        yield url, folder, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def chromium():
    if not Path(CHROMIUM).exists():
        message = f"the browser tests need Debian's Chromium at {CHROMIUM}: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def sign_in(server, chromium):
    """Open a signed-in page for a user (one browser context, so one session, per user)."""
    url = server[0]
    contexts = []

    def open_as(user: str) -> Page:
        context = chromium.new_context(base_url=url, viewport={"width": 1360, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.goto("/")
        page.fill("#user", user)
        page.fill("#password", DEMO_PASSWORD)
        page.click("button.primary")
        expect(page.locator("h1")).to_contain_text("Inbox")
        return page

    yield open_as
    for context in contexts:
        context.close()


def shot(page: Page, name: str) -> None:
    """Save a full-page screenshot as a test artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def fill(page: Page, answers: dict) -> None:
    """Answer a task form the way a person would: type text, pick radio buttons, tick boxes, choose options."""
    for name, value in answers.items():
        field = page.locator(f"#field-{name}")
        if isinstance(value, list):
            for item in value:
                field.locator(f"input[value='{item}']").check()
        elif field.locator("input[type=radio]").count():
            field.locator(f"input[value='{value}']").check()
        elif field.locator("select").count():
            field.locator("select").select_option(value)
        else:
            field.locator("input, textarea").fill(value)


def start_complaint(page: Page, key: str) -> None:
    """From the start page, start a complaint; the browser lands on its intake form."""
    page.click("nav >> text=Start")
    page.fill("#key-customer_complaint", key)
    page.click("#start-customer_complaint")
    expect(page.locator("h1")).to_contain_text("Record complaint")


def open_from_inbox(page: Page, key: str) -> None:
    """Go to the inbox and open the task of the case with this key (its form ready to fill)."""
    page.goto("/")
    page.locator("#inbox tr", has_text=key).locator("a.task-link").click()
    page.locator("form.task-form").wait_for()


def test_first_run_prints_the_demo_password_and_serves_the_sign_in_page(server, chromium):
    url, folder, log = server
    page = chromium.new_page()
    page.goto(url)
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    assert (folder / "qproc.db").exists() and f"demo password '{DEMO_PASSWORD}'" in log.read_text()
    shot(page, "01-sign-in")
    page.close()


def test_sign_in_shows_the_inbox_with_a_started_complaint(sign_in):
    page = sign_in("li.zhou")
    page.goto("/start")
    shot(page, "02-start")
    start_complaint(page, "CC-BROWSER-1")
    page.goto("/")
    row = page.locator("#inbox tr", has_text="CC-BROWSER-1")
    expect(row).to_contain_text("Record complaint 登记客诉处理单")
    expect(page.locator(".who")).to_contain_text("Zhou Li 周丽")
    shot(page, "02-inbox")


def test_invalid_answers_show_beside_fields_then_valid_answers_complete_the_task(sign_in):
    page = sign_in("li.zhou")
    start_complaint(page, "CC-BROWSER-2")
    fill(page, {"customer": "Hangzhou Motors", "quantity_affected": "-1"})
    page.click("#submit")
    expect(page.locator("#field-contact .field-error")).to_have_text("is required")
    expect(page.locator("#field-quantity_affected .field-error")).to_have_text("must be at least 0")
    expect(page.locator("#field-customer input")).to_have_value("Hangzhou Motors")
    shot(page, "03-validation-errors")
    fill(page, {**INTAKE, "quantity_affected": "12"})
    page.click("#submit")
    expect(page.locator(".flash")).to_contain_text("Record complaint")
    expect(page.locator("#instance-tasks")).to_contain_text("Sign early-warning form")
    shot(page, "04-after-submit")


def test_task_of_another_department_is_forbidden(sign_in):
    sales = sign_in("li.zhou")
    start_complaint(sales, "CC-BROWSER-3")
    task_path = urlparse(sales.url).path
    quality = sign_in("mei.wang")
    response = quality.goto(task_path)
    assert response.status == 403
    expect(quality.locator(".error-box")).to_contain_text("'mei.wang' is not a member of department 'sales'")
    shot(quality, "05-forbidden")


def test_instance_diagram_marks_done_and_current_steps(sign_in):
    page = sign_in("li.zhou")
    start_complaint(page, "CC-BROWSER-4")
    fill(page, INTAKE)
    page.click("#submit")
    diagram = page.locator("#diagram svg")
    expect(diagram.locator("g.current[data-id='approve_proceed']")).to_have_count(1)
    expect(diagram.locator("g.done[data-id='intake']")).to_have_count(1)
    expect(diagram.locator("g.edge.done")).not_to_have_count(0)
    shot(page, "06-instance-diagram")


def test_complaint_goes_from_intake_to_closure_department_by_department(sign_in):
    key = "CC-BROWSER-WALK"
    pages = {"li.zhou": sign_in("li.zhou")}
    start_complaint(pages["li.zhou"], key)
    fill(pages["li.zhou"], INTAKE)
    pages["li.zhou"].click("#submit")
    for step, (user, task, answers) in enumerate(WALK, start=1):
        page = pages.get(user) or pages.setdefault(user, sign_in(user))
        open_from_inbox(page, key)
        if task == "approve_capa":
            shot(page, f"07-walk-{step:02d}-{task}-signature")
        if task == "quality_review":
            page.click("form[action$='/claim'] button")
            expect(page.locator(".meta")).to_contain_text("Wang Mei")
            page.click(".lang button[value=zh]")
            expect(page.locator("#field-nonconformity")).to_contain_text("不合格判定")
            shot(page, f"07-walk-{step:02d}-{task}-zh")
        fill(page, answers)
        page.click("#submit")
        expect(page.locator(".flash")).to_be_visible()
    final = pages["li.zhou"]
    expect(final.locator("#instance-status")).to_have_text("completed")
    expect(final.locator("#diagram svg g.done[data-id='complaint_closed']")).to_have_count(1)
    shot(final, "08-walk-closed")
