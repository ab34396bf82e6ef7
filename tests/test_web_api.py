"""The JSON API in-process: token and session auth, the same rules as the pages and the CLI, problems per field."""

from conftest import fingerprint
from webclient import INTAKE, api_token, at_capa_approval, browser, csrf_of


def start(client, headers) -> dict:
    response = client.post("/api/processes/customer_complaint/instances", json={"business_key": "CC-9"},
                           headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_api_without_credentials_is_401(web_app):
    response = browser(web_app).get("/api/tasks")
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"


def test_wrong_password_gets_no_token(web_app):
    response = browser(web_app).post("/api/token", json={"user": "li.zhou", "password": "wrong-password"})
    assert response.status_code == 401


def test_forged_token_is_401(web_app):
    response = browser(web_app).get("/api/tasks", headers={"Authorization": "Bearer li.zhou"})
    assert response.status_code == 401


def test_start_returns_the_intake_task(web_app):
    client = browser(web_app)
    started = start(client, api_token(client, "li.zhou"))
    assert started["instance"]["business_key"] == "CC-9"
    assert [(t["task"], t["department"]) for t in started["tasks"]] == [("intake", "sales")]


def test_processes_lists_what_ones_department_may_start(web_app):
    client = browser(web_app)
    assert [p["process"] for p in client.get("/api/processes", headers=api_token(client, "li.zhou")).json()] == [
        "customer_complaint"]
    assert [p["process"] for p in client.get("/api/processes", headers=api_token(client, "mei.wang")).json()] == [
        "capa"]  # quality starts a CAPA on its own
    assert client.get("/api/processes", headers=api_token(client, "jian.tang")).json() == []


def test_task_comes_with_its_form_schema(web_app):
    client = browser(web_app)
    sales = api_token(client, "li.zhou")
    task_id = start(client, sales)["tasks"][0]["id"]
    task = client.get(f"/api/tasks/{task_id}", headers=sales).json()
    assert task["form_schema"]["key"] == "complaint_intake"
    assert "customer" in task["form_schema"]["json_schema"]["required"] and task["blocked"] is None


def test_task_of_another_department_is_403(web_app):
    client = browser(web_app)
    task_id = start(client, api_token(client, "li.zhou"))["tasks"][0]["id"]
    response = client.get(f"/api/tasks/{task_id}", headers=api_token(client, "mei.wang"))
    assert response.status_code == 403 and "not a member of department 'sales'" in response.json()["detail"]


def test_invalid_answers_are_422_naming_each_field_and_change_nothing(web_app, web_db):
    client = browser(web_app)
    sales = api_token(client, "li.zhou")
    task_id = start(client, sales)["tasks"][0]["id"]
    before = fingerprint(web_db)
    response = client.post(f"/api/tasks/{task_id}/complete", json={"data": {**INTAKE, "channel": "pigeon",
                                                                            "customer": ""}}, headers=sales)
    assert response.status_code == 422
    assert response.json()["problems"] == {"customer": "is required",
                                           "channel": "must be one of: phone, fax, letter, email, visit, survey"}
    assert fingerprint(web_db) == before


def test_complete_returns_the_next_tasks(web_app):
    client = browser(web_app)
    sales = api_token(client, "li.zhou")
    task_id = start(client, sales)["tasks"][0]["id"]
    response = client.post(f"/api/tasks/{task_id}/complete", json={"data": INTAKE}, headers=sales)
    assert response.status_code == 200
    assert [(t["task"], t["department"]) for t in response.json()["next_tasks"]] == [("approve_proceed", "mgmt_rep")]


def test_inbox_filters_unclaimed_and_mine(web_app):
    client = browser(web_app)
    sales = api_token(client, "li.zhou")
    task_id = start(client, sales)["tasks"][0]["id"]
    client.post(f"/api/tasks/{task_id}/claim", headers=sales)
    assert [t["id"] for t in client.get("/api/tasks?mine=true", headers=sales).json()] == [task_id]
    assert client.get("/api/tasks?unclaimed=true", headers=sales).json() == []


def test_claiming_a_claimed_task_is_409(web_app):
    client = browser(web_app)
    sales = api_token(client, "li.zhou")
    task_id = start(client, sales)["tasks"][0]["id"]
    client.post(f"/api/tasks/{task_id}/claim", headers=sales)
    assert client.post(f"/api/tasks/{task_id}/claim", headers=sales).status_code == 409


def test_instance_and_history_of_ones_case(web_app):
    client = browser(web_app)
    sales = api_token(client, "li.zhou")
    instance_id = start(client, sales)["instance"]["id"]
    assert client.get(f"/api/instances/{instance_id}", headers=sales).json()["status"] == "running"
    kinds = [e["kind"] for e in client.get(f"/api/instances/{instance_id}/history", headers=sales).json()]
    assert kinds[:2] == ["instance_started", "step_completed"] and "task_created" in kinds


def test_instance_of_an_uninvolved_department_is_403(web_app):
    client = browser(web_app)
    instance_id = start(client, api_token(client, "li.zhou"))["instance"]["id"]
    assert client.get(f"/api/instances/{instance_id}", headers=api_token(client, "mei.wang")).status_code == 403


def test_diagram_is_svg(web_app):
    client = browser(web_app)
    sales = api_token(client, "li.zhou")
    instance_id = start(client, sales)["instance"]["id"]
    response = client.get(f"/api/instances/{instance_id}/diagram", headers=sales)
    assert response.headers["content-type"].startswith("image/svg+xml") and response.text.startswith("<svg")


def test_session_write_needs_the_csrf_header(web_app):
    client = browser(web_app, "li.zhou")
    path = "/api/processes/customer_complaint/instances"
    assert client.post(path, json={}).status_code == 403
    token = csrf_of(client.get("/").text)
    assert client.post(path, json={}, headers={"X-CSRF-Token": token}).status_code == 201


def test_unknown_task_is_404(web_app):
    client = browser(web_app)
    assert client.get("/api/tasks/999", headers=api_token(client, "li.zhou")).status_code == 404


def test_openapi_document_lists_the_operations(web_app):
    paths = browser(web_app).get("/api/openapi.json").json()["paths"]
    assert {"/api/token", "/api/tasks", "/api/tasks/{task_id}", "/api/tasks/{task_id}/claim",
            "/api/tasks/{task_id}/complete", "/api/processes/{process}/instances", "/api/instances/{instance_id}",
            "/api/instances/{instance_id}/history"} <= set(paths)


def test_signed_task_says_so_and_completes_with_the_password(web_app, web_db):
    task_id = at_capa_approval(web_app, web_db)
    client = browser(web_app)
    headers = api_token(client, "jian.tang")
    assert client.get(f"/api/tasks/{task_id}", headers=headers).json()["signature"] == "field:capa_decision"
    refused = client.post(f"/api/tasks/{task_id}/complete", json={"data": {"capa_decision": "approved"},
                                                                   "password": "wrong-password"}, headers=headers)
    assert refused.status_code == 403 and "signature refused" in refused.json()["detail"]
    done = client.post(f"/api/tasks/{task_id}/complete", json={"data": {"capa_decision": "approved"},
                                                                "password": "test-password"}, headers=headers)
    assert done.status_code == 200


def test_a_nul_character_in_a_filter_or_process_id_is_422_not_a_server_error(web_app):
    client = browser(web_app)
    sales = api_token(client, "li.zhou")
    assert client.get("/api/tasks", params={"process": "customer\x00complaint"}, headers=sales).status_code == 422
    assert client.get("/api/tasks", params={"department": "sales\x00"}, headers=sales).status_code == 422
    assert client.post("/api/processes/customer%00complaint/instances", json={}, headers=sales).status_code == 422
