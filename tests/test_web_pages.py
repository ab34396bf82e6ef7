"""The web pages in-process (Starlette's TestClient on a real SQLite file): sign-in, CSRF, inbox, forms, 403s."""

from datetime import timedelta
from html import unescape

from conftest import PASSWORD, T0, fingerprint
from engine import credentials, runtime, store, timers
from webclient import at_capa_approval, browser, csrf_of, post_form

INTAKE = {"customer": "Hangzhou Motors", "contact": "Mr. Zhao", "product_model": "QX-200", "channel": "email",
          "description": "E07 overcurrent after 2 h", "complaint_type": "quality",
          "customer_request": ["replace", "capa_report"]}


def start_complaint(client, key="CC-1") -> str:
    """Start a complaint from the start page; returns where the browser is sent (the intake task)."""
    response = post_form(client, "/start/customer_complaint", {"business_key": key}, page="/start")
    assert response.status_code == 303, response.text
    return response.headers["location"]


def test_signed_out_visitor_is_sent_to_sign_in(web_app):
    response = browser(web_app).get("/tasks/1")
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/tasks/1"


def sign_in(client, password: str, next_path: str = "/"):
    token = csrf_of(client.get("/login").text)
    return client.post("/login", data={"user": "li.zhou", "password": password, "csrf": token, "next": next_path})


def test_wrong_password_is_refused(web_app):
    response = sign_in(browser(web_app), "nope-nope")
    assert response.status_code == 401 and "Wrong user or password." in response.text


def test_sign_in_returns_to_the_page_asked_for(web_app):
    assert sign_in(browser(web_app), PASSWORD, "/start").headers["location"] == "/start"


def test_sign_in_never_redirects_off_site(web_app):
    assert sign_in(browser(web_app), PASSWORD, "//evil.example/").headers["location"] == "/"


def test_form_without_csrf_token_is_refused_and_changes_nothing(web_app, web_db):
    client = browser(web_app, "li.zhou")
    before = fingerprint(web_db)
    response = client.post("/start/customer_complaint", data={"business_key": "CC-1", "csrf": "forged"})
    assert response.status_code == 403 and "CSRF" in response.text
    assert fingerprint(web_db) == before


def test_starting_a_complaint_opens_its_intake_form(web_app):
    client = browser(web_app, "li.zhou")
    page = client.get(start_complaint(client))
    assert "Record complaint 登记客诉处理单" in page.text and 'name="customer"' in page.text


def test_inbox_lists_the_departments_open_tasks(web_app):
    client = browser(web_app, "li.zhou")
    start_complaint(client)
    page = client.get("/")
    assert page.status_code == 200 and "Record complaint 登记客诉处理单" in page.text and "CC-1" in page.text


def test_inbox_filter_mine_hides_unclaimed_tasks(web_app):
    client = browser(web_app, "li.zhou")
    start_complaint(client)
    assert "CC-1" not in client.get("/?show=mine").text


def test_claimed_task_shows_under_mine(web_app):
    client = browser(web_app, "li.zhou")
    task = start_complaint(client)
    post_form(client, f"{task}/claim", {"next": "/"})
    assert "CC-1" in client.get("/?show=mine").text and "CC-1" not in client.get("/?show=unclaimed").text


def test_inbox_of_a_department_one_is_not_in_is_403(web_app):
    client = browser(web_app, "li.zhou")
    assert client.get("/?department=quality").status_code == 403


def test_task_of_another_department_is_403(web_app):
    sales = browser(web_app, "li.zhou")
    task = start_complaint(sales)
    response = browser(web_app, "mei.wang").get(task)
    assert response.status_code == 403 and "'mei.wang' is not a member of department 'sales'" in unescape(response.text)


def test_completing_another_departments_task_is_403_and_changes_nothing(web_app, web_db):
    task = start_complaint(browser(web_app, "li.zhou"))
    quality = browser(web_app, "mei.wang")
    before = fingerprint(web_db)
    response = post_form(quality, task, INTAKE)
    assert response.status_code == 403 and fingerprint(web_db) == before


def test_invalid_answers_are_shown_beside_each_field_and_change_nothing(web_app, web_db):
    client = browser(web_app, "li.zhou")
    task = start_complaint(client)
    before = fingerprint(web_db)
    response = post_form(client, task, {**INTAKE, "customer": "", "quantity_affected": "-2"}, page=task)
    assert response.status_code == 422
    assert 'id="field-customer"' in response.text and "is required" in response.text
    assert "must be at least 0" in response.text and 'value="Hangzhou Motors"' not in response.text
    assert fingerprint(web_db) == before


def test_valid_answers_complete_the_task_and_show_the_case(web_app, web_db):
    client = browser(web_app, "li.zhou")
    task = start_complaint(client)
    response = post_form(client, task, INTAKE, page=task)
    assert response.status_code == 303 and response.headers["location"] == "/instances/1"
    next_tasks = web_db.run(lambda s: [(t.name, t.department) for t in store.tasks_of_instance(s, 1, ("open",))])
    assert next_tasks == [("approve_proceed", "mgmt_rep")]


def test_multi_choice_answers_are_kept_as_a_list(web_app, web_db):
    client = browser(web_app, "li.zhou")
    task = start_complaint(client)
    post_form(client, task, INTAKE, page=task)
    data = web_db.run(lambda s: store.get_task(s, 1).data)
    assert data["customer_request"] == ["replace", "capa_report"]


def test_head_task_tells_a_plain_member_why_they_cannot_complete_it(web_app, web_db):
    web_db.run(lambda s: credentials.set_password(s, runtime.organisation(s), "hong.han", PASSWORD, "hong.han", T0))
    sales = browser(web_app, "li.zhou")
    task = start_complaint(sales)
    post_form(sales, task, INTAKE, page=task)
    page = browser(web_app, "hong.han").get("/tasks/2")
    assert page.status_code == 200 and "needs the head of 'mgmt_rep' (jian.tang)" in unescape(page.text)
    assert 'id="submit"' not in page.text


def test_language_switch_shows_chinese_form_labels(web_app):
    client = browser(web_app, "li.zhou")
    task = start_complaint(client)
    post_form(client, "/lang", {"lang": "zh", "next": task}, page=task)
    page = client.get(task)
    assert "客户" in page.text and "投诉类别" in page.text and "提交" in page.text


def test_case_page_shows_diagram_with_the_current_step(web_app):
    client = browser(web_app, "li.zhou")
    task = start_complaint(client)
    post_form(client, task, INTAKE, page=task)
    page = client.get("/instances/1").text
    assert "<svg" in page and 'class="shape userTask current" data-id="approve_proceed"' in page
    assert 'class="shape userTask done" data-id="intake"' in page


def test_case_page_marks_the_call_activity_current_while_the_capa_it_called_waits(web_app, web_db):
    task_id = at_capa_approval(web_app, web_db)
    page = browser(web_app, "jian.tang").get("/instances/1").text
    assert 'class="shape callActivity current" data-id="run_capa"' in page
    assert f"/tasks/{task_id}" in page  # the call activity links to the CAPA step waiting in the inbox


def test_case_page_of_an_uninvolved_department_is_403(web_app):
    start_complaint(browser(web_app, "li.zhou"))
    assert browser(web_app, "mei.wang").get("/instances/1").status_code == 403


def test_sign_out_ends_the_session(web_app):
    client = browser(web_app, "li.zhou")
    post_form(client, "/logout")
    assert client.get("/").status_code == 303


def test_signed_task_asks_for_the_password_beside_the_form(web_app, web_db):
    task_id = at_capa_approval(web_app, web_db)
    page = browser(web_app, "jian.tang").get(f"/tasks/{task_id}").text
    assert 'name="signature_password"' in page and "Electronic signature" in page


def test_signed_task_without_password_is_asked_again_and_changes_nothing(web_app, web_db):
    task_id = at_capa_approval(web_app, web_db)
    client = browser(web_app, "jian.tang")
    before = fingerprint(web_db)
    response = post_form(client, f"/tasks/{task_id}", {"capa_decision": "approved"}, page=f"/tasks/{task_id}")
    assert response.status_code == 422 and "your password is required to sign" in response.text
    assert fingerprint(web_db) == before


def test_wrong_signature_password_is_shown_beside_the_field_and_kept_in_the_history(web_app, web_db):
    task_id = at_capa_approval(web_app, web_db)
    client = browser(web_app, "jian.tang")
    response = post_form(client, f"/tasks/{task_id}", {"capa_decision": "approved",
                                                       "signature_password": "not-my-password"},
                         page=f"/tasks/{task_id}")
    assert response.status_code == 422 and "signature refused" in unescape(response.text)
    kinds = [e.kind for e in web_db.run(lambda s: store.events_of(s, 1))]
    assert kinds[-1] == "action_refused"


def test_right_signature_password_completes_and_signs(web_app, web_db):
    task_id = at_capa_approval(web_app, web_db)
    client = browser(web_app, "jian.tang")
    response = post_form(client, f"/tasks/{task_id}", {"capa_decision": "approved", "signature_password": PASSWORD},
                         page=f"/tasks/{task_id}")
    assert response.status_code == 303
    assert "task_signed" in [e.kind for e in web_db.run(lambda s: store.events_of(s, 1))]


def test_task_escalated_to_someone_outside_the_department_is_theirs_to_open(web_app, web_db):
    start_complaint(browser(web_app, "li.zhou"))
    timers.fire_due(web_db, T0 + timedelta(days=3))
    [task] = web_db.run(lambda s: store.tasks_of_instance(s, 1, ("open",)))
    assert task.escalated_to not in ("li.zhou", "hao.wu", "ting.xu", "jun.chen")
    web_db.run(lambda s: credentials.set_password(s, runtime.organisation(s), task.escalated_to, PASSWORD,
                                                  task.escalated_to, T0))
    boss = browser(web_app, task.escalated_to)
    assert "CC-1" in boss.get("/").text and boss.get("/tasks/1").status_code == 200
