"""Helpers for driving the web application in-process: sign in, read the CSRF token, post forms."""

import re

from starlette.testclient import TestClient

from conftest import PASSWORD, T0
from engine import credentials, runtime

INTAKE = {"customer": "Hangzhou Motors", "contact": "Mr. Zhao", "product_model": "QX-200", "channel": "email",
          "description": "E07 overcurrent after 2 h", "complaint_type": "quality"}
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    return _CSRF.search(html).group(1)


def browser(app, user: str | None = None) -> TestClient:
    """A client with its own cookie jar, signed in as ``user`` when given."""
    client = TestClient(app, follow_redirects=False)
    if user:
        token = csrf_of(client.get("/login").text)
        response = client.post("/login", data={"user": user, "password": PASSWORD, "csrf": token, "next": "/"})
        assert response.status_code == 303, response.text
    return client


def post_form(client: TestClient, path: str, data: dict | None = None, page: str = "/"):
    """Post a form the way its page would: with the session's CSRF token."""
    token = csrf_of(client.get(page).text)
    return client.post(path, data={**(data or {}), "csrf": token})


def api_token(client: TestClient, user: str) -> dict:
    """Authorization headers with a fresh bearer token for ``user``."""
    response = client.post("/api/token", json={"user": user, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def at_capa_approval(web_app, web_db) -> int:
    """Drive a complaint through the API to the signed CAPA approval; returns its task id."""
    web_db.run(lambda s: credentials.set_password(s, runtime.organisation(s), "bin.huang", PASSWORD, "bin.huang", T0))
    client = browser(web_app)
    steps = [("li.zhou", INTAKE),
             ("jian.tang", {"proceed": "proceed"}),
             ("mei.wang", {"facts_verified": "yes", "nonconformity": "confirmed", "responsibility": "ours"}),
             # the CAPA the complaint calls, up to its action plan
             ("mei.wang", {"capa_source": "complaint", "team_leader": "Wang Mei", "team_members": "Huang Bin"}),
             ("mei.wang", {"description": "E07 overcurrent", "product_model": "QX-200", "quantity_affected": 12,
                           "detected_at": "customer"}),
             ("bin.huang", {"containment": "Quarantine", "suspect_quantity": 300, "contained_on": "2026-11-02"}),
             ("bin.huang", {"root_cause": "Solder voids", "failure_cause": "process"}),
             ("bin.huang", {"corrective_action": "Re-qualify reflow", "action_owner": "Huang Bin",
                            "planned_completion": "2026-12-05"})]
    client.post("/api/processes/customer_complaint/instances", json={}, headers=api_token(client, "li.zhou"))
    for user, answers in steps:
        headers = api_token(client, user)
        [task] = client.get("/api/tasks", headers=headers).json()
        assert client.post(f"/api/tasks/{task['id']}/complete", json={"data": answers},
                           headers=headers).status_code == 200
    [approval] = client.get("/api/tasks", headers=api_token(client, "jian.tang")).json()
    return approval["id"]
