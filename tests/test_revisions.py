"""Revisions: a new version of a controlled procedure is a draft until its document change is approved;
the obsolete version is withdrawn; qproc diff says what a revision changes in the process owner's words."""

import json

import pytest
from click.testing import CliRunner

from cli import main
from conftest import FIXTURES, ROOT, T0, at, deploy_fixture, fingerprint
from engine import audit, revisions, runtime, store
from engine.errors import InvalidTransition

ORIGINAL, REVISED = FIXTURES / "processes" / "complaint_original.bpmn", FIXTURES / "processes" / "complaint_revised.bpmn"
SETTINGS = FIXTURES / "processes" / "complaint_settings.yaml"  # frozen with the complaint fixtures, as their forms
FORMS = FIXTURES / "complaint_forms"
INTAKE = {"customer": "Hangzhou Motors", "contact": "Zhao", "product_model": "QX-200", "channel": "email",
          "complaint_type": "quality", "description": "E07 overcurrent after 2 h"}


def deploy_complaint(db, path, note=None):
    [result] = db.run(lambda s: runtime.deploy(s, [path], FORMS, "qiang.li", at(5), settings_file=SETTINGS,
                                               note=note))
    return result


@pytest.fixture
def controlled_db(org_db):
    """Approval through P4 on: the document change fixture and the complaint as A/0 deployed."""
    org_db.run(lambda s: revisions.change_setting(s, "activation", "approval", "qiang.li", T0, "production"))
    org_db.run(lambda s: runtime.deploy(s, [FIXTURES / "processes" / "document_change.bpmn"], FIXTURES / "forms",
                                        "qiang.li", T0))
    deploy_complaint(org_db, ORIGINAL)
    return org_db


def start_complaint(db, minutes=10, **kwargs):
    return db.run(lambda s: runtime.start(s, "customer_complaint", "li.zhou", at(minutes), **kwargs))


def decide(db, change_instance: int, approved: bool, minutes=30):
    [task] = db.run(lambda s: store.tasks_of_instance(s, change_instance, runtime.ACTIVE_TASK))
    db.run(lambda s: runtime.complete(s, task.id, "jian.tang", at(minutes), {"approved": approved}))


def statuses(db):
    return db.run(lambda s: [(r.definition.version, r.label, r.status)
                             for r in store.revisions_of(s, "customer_complaint")])


def test_a_revision_is_a_draft_until_its_document_change_is_approved(controlled_db):
    result = deploy_complaint(controlled_db, REVISED, note="containment step; quality explains")
    assert (result.version, result.label, result.status) == (2, "A/1", "draft")
    change = controlled_db.run(lambda s: store.get_instance(s, result.change_instance))
    assert change.process_key == "document_change"
    started = controlled_db.run(lambda s: audit.history(s, change.id))[0].data["data"]
    assert {k: started[k] for k in ("document_kind", "process_key", "version", "revision_label", "change_note")} == {
        "document_kind": "procedure", "process_key": "customer_complaint", "version": 2, "revision_label": "A/1",
        "change_note": "containment step; quality explains"}
    assert start_complaint(controlled_db).definition.version == 1
    with pytest.raises(InvalidTransition, match=r"version 2 \(A/1\): it is draft; the active version is 1 \(A/0\)"):
        start_complaint(controlled_db, version=2)


def test_complaint_on_v1_finishes_on_v1_after_v2_is_approved_new_ones_start_on_v2_and_v1_is_refused(controlled_db):
    old = start_complaint(controlled_db)
    result = deploy_complaint(controlled_db, REVISED, note="containment step")
    decide(controlled_db, result.change_instance, approved=True)
    assert statuses(controlled_db) == [(1, "A/0", "obsolete"), (2, "A/1", "active")]
    activated = controlled_db.run(lambda s: audit.history(s, None))[-1]
    assert (activated.kind, activated.data["approved_by"], activated.data["document_change"],
            activated.data["obsoletes"]) == ("revision_activated", "jian.tang", result.change_instance, [1])
    [intake] = controlled_db.run(lambda s: store.tasks_of_instance(s, old.id, runtime.ACTIVE_TASK))
    controlled_db.run(lambda s: runtime.complete(s, intake.id, "li.zhou", at(40), INTAKE))
    assert controlled_db.run(lambda s: store.get_instance(s, old.id).definition.version) == 1
    assert start_complaint(controlled_db, 50).definition.version == 2
    before = fingerprint(controlled_db)
    with pytest.raises(InvalidTransition, match=r"cannot start customer_complaint version 1 \(A/0\): it is obsolete; "
                                                r"the active version is 2 \(A/1\)"):
        start_complaint(controlled_db, 60, version=1)
    assert fingerprint(controlled_db) == before


def test_a_refused_approval_rejects_the_draft_and_keeps_the_active_version(controlled_db):
    result = deploy_complaint(controlled_db, REVISED)
    decide(controlled_db, result.change_instance, approved=False)
    assert statuses(controlled_db) == [(1, "A/0", "active"), (2, "A/1", "rejected")]
    assert controlled_db.run(lambda s: audit.history(s, None))[-1].kind == "revision_rejected"


def test_a_controlled_revision_without_document_change_deployed_is_refused_and_changes_nothing(org_db):
    org_db.run(lambda s: revisions.change_setting(s, "activation", "approval", "qiang.li", T0, "production"))
    deploy_complaint(org_db, ORIGINAL)
    before = fingerprint(org_db)
    with pytest.raises(InvalidTransition, match="no 'document_change' process is deployed"):
        deploy_complaint(org_db, REVISED)
    assert fingerprint(org_db) == before


def test_document_change_itself_and_direct_databases_activate_at_once(controlled_db, tmp_path):
    changed = _edited(tmp_path, {"Approve the revision": "Approve the new revision"})
    [result] = controlled_db.run(lambda s: runtime.deploy(s, [changed], FIXTURES / "forms", "qiang.li", at(1)))
    assert (result.label, result.status) == ("A/1", "active")
    controlled_db.run(lambda s: revisions.change_setting(s, "activation", "direct", "qiang.li", at(2), "test bench"))
    assert deploy_complaint(controlled_db, REVISED).status == "active"
    assert statuses(controlled_db)[-1] == (2, "A/1", "active")
    deployed = controlled_db.run(lambda s: audit.history(s, None))[-1]
    assert (deployed.data["activation"], deployed.data["obsoletes"]) == ("direct", [1])


def test_settings_are_checked_and_each_change_recorded(controlled_db):
    with pytest.raises(Exception, match="must be one of approval, direct"):
        controlled_db.run(lambda s: revisions.change_setting(s, "activation", "sometimes", "qiang.li", at(1), "x"))
    controlled_db.run(lambda s: revisions.change_setting(s, "controlled", "capa", "qiang.li", at(1), "only CAPA"))
    assert deploy_complaint(controlled_db, REVISED).status == "active"  # the complaint is no longer controlled
    event = [e for e in controlled_db.run(lambda s: audit.history(s, None)) if e.kind == "setting_changed"][-1]
    assert (event.actor, event.data) == ("qiang.li", {"key": "controlled", "old": "all", "new": ["capa"],
                                                      "reason": "only CAPA"})


def qproc(db, *args, user="qiang.li"):
    result = CliRunner().invoke(main, ["--db", db.url, "--as", user, "--now", "2026-11-02T10:00:00+00:00", *args],
                                catch_exceptions=False)
    return result.exit_code, result.output


ADDED = ("Step added: 'Contain the problem 围堵措施' (containment), user task in Engineering 工程部, "
         "after 'Open corrective action 立案' (open_capa).")
MOVED = ("Department changed: 'Explain to customer with evidence 向客户解释说明' (explain_to_customer) "
         "moves from Sales 销售部 to Quality 质量部.")


def test_diff_says_in_words_that_a_step_was_added_and_a_task_moved_department(controlled_db):
    deploy_complaint(controlled_db, REVISED)
    code, out = qproc(controlled_db, "diff", "customer_complaint", "1", "2")
    assert code == 0, out
    assert [line.strip()[2:] for line in out.splitlines() if line.strip().startswith("- ")] == [ADDED, MOVED]
    code, out = qproc(controlled_db, "diff", "customer_complaint", "1", "2", "--json")
    assert [(c["kind"], c["subject"]) for c in json.loads(out)["changes"]] == [
        ("step_added", "containment"), ("department_changed", "explain_to_customer")]


def test_deploy_dry_run_shows_the_diff_and_the_running_instances_and_changes_nothing(controlled_db, tmp_path):
    running = start_complaint(controlled_db)
    folder = tmp_path / "processes"
    folder.mkdir()
    (folder / REVISED.name).write_bytes(REVISED.read_bytes())
    (folder / "settings.yaml").write_bytes(SETTINGS.read_bytes())
    before = fingerprint(controlled_db)
    code, out = qproc(controlled_db, "deploy", str(folder), "--forms", str(FORMS), "--dry-run")
    assert code == 0, out
    assert ADDED in out and MOVED in out
    assert f"instance {running.id} (-) on version 1, waiting on intake" in out
    assert fingerprint(controlled_db) == before


def test_definitions_and_instances_show_revisions_and_versions(controlled_db):
    on_v1 = start_complaint(controlled_db)
    result = deploy_complaint(controlled_db, REVISED, note="containment step")
    decide(controlled_db, result.change_instance, approved=True)
    on_v2 = start_complaint(controlled_db, 50)
    code, out = qproc(controlled_db, "definitions", "--json")
    rows = [(d["process"], d["version"], d["revision"], d["status"], d["activation"], d["activated_by"])
            for d in json.loads(out) if d["process"] == "customer_complaint"]
    assert rows == [("customer_complaint", 1, "A/0", "obsolete", "first_issue", "qiang.li"),
                    ("customer_complaint", 2, "A/1", "active", "approved", "jian.tang")]
    for version, instance in ((1, on_v1), (2, on_v2)):
        code, out = qproc(controlled_db, "instances", "--process", "customer_complaint", "--version", str(version),
                          "--json")
        assert [i["id"] for i in json.loads(out)] == [instance.id]


def test_a_timer_started_procedure_keeps_its_schedule_on_the_active_version_until_the_draft_is_approved(
        controlled_db, tmp_path):
    deploy_fixture(controlled_db, "timer_start_cycle")
    [draft] = deploy_fixture(controlled_db, "timer_start_cycle", {"/P3M": "/P6M"}, tmp_path)
    assert draft.status == "draft"
    schedule = controlled_db.run(lambda s: store.find_schedule(s, "timer_start_cycle"))
    assert (schedule.definition.version, "P3M" in schedule.expression) == (1, True)
    decide(controlled_db, draft.change_instance, approved=True)
    schedule = controlled_db.run(lambda s: store.find_schedule(s, "timer_start_cycle"))
    assert (schedule.definition.version, "P6M" in schedule.expression) == (2, True)


def test_an_approved_change_reclassified_as_another_kind_of_document_does_not_activate_the_draft(controlled_db,
                                                                                                  tmp_path):
    reclassify = {'<bpmn:sequenceFlow id="f_approve" sourceRef="approve_change" targetRef="end" />':
                  '<bpmn:sequenceFlow id="f_approve" sourceRef="approve_change" targetRef="reclassify" />'
                  '<bpmn:scriptTask id="reclassify"><bpmn:script>document_kind = "manual"</bpmn:script>'
                  '</bpmn:scriptTask><bpmn:sequenceFlow id="f_end" sourceRef="reclassify" targetRef="end" />'}
    [changed] = controlled_db.run(lambda s: runtime.deploy(s, [_edited(tmp_path, reclassify)], FIXTURES / "forms",
                                                           "qiang.li", at(1)))
    assert changed.version == 2
    result = deploy_complaint(controlled_db, REVISED)
    decide(controlled_db, result.change_instance, approved=True)
    assert statuses(controlled_db) == [(1, "A/0", "active"), (2, "A/1", "rejected")]


def _edited(tmp_path, replacements):
    text = (FIXTURES / "processes" / "document_change.bpmn").read_text(encoding="utf-8")
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "document_change.bpmn"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_document_change_approves_a_revision_signed_by_the_management_representative(org_db):
    from walk import complete, deploy_shipped, doer

    org_db.run(lambda s: revisions.change_setting(s, "activation", "approval", "qiang.li", T0, "production"))
    deploy_shipped(org_db, "document_change")
    deploy_complaint(org_db, ORIGINAL)
    result = deploy_complaint(org_db, REVISED, note="containment step")
    answers = {
        "request_change": {"document_kind": "procedure", "document_number": "QP-8.5-03", "revision_label": "A/1",
                           "document_title": "Customer complaint procedure", "current_revision": "A/0",
                           "change_reason": "Containment before analysis", "change_note": "containment step"},
        "review_change": {"review_passed": "yes"},
        "approve_by_mgmt_rep": {"approved": "yes"},
        "release_document": {"effective_date": "2026-11-10", "revision_history_updated": "yes",
                             "distribution": "Quality", "copies_issued": "1"},
        "withdraw_obsolete": {"obsolete_revision": "A/0", "copies_recovered": "1", "master_marked_obsolete": "yes",
                              "withdrawn_on": "2026-11-10"}}
    for minutes in range(10, 100, 10):
        tasks = org_db.run(lambda s: store.tasks_of_instance(s, result.change_instance, runtime.ACTIVE_TASK))
        if not tasks:
            break
        actor = "lei.liu" if tasks[0].name == "review_change" else doer(org_db, tasks[0])
        complete(org_db, tasks[0].id, actor, at(minutes), answers[tasks[0].name])
    assert statuses(org_db) == [(1, "A/0", "obsolete"), (2, "A/1", "active")]
    assert org_db.run(lambda s: audit.history(s, None))[-1].data["approved_by"] == "jian.tang"


def test_deploying_a_process_without_an_unrelated_decision_table_is_not_a_new_version(org_db):
    shipped = ROOT / "processes"
    deploy_all = [shipped / "capa.bpmn", shipped / "after_sales_service.bpmn", shipped / "problem_level.dmn"]
    org_db.run(lambda s: runtime.deploy(s, deploy_all, ROOT / "forms", "qiang.li", T0,
                                        settings_file=shipped / "settings.yaml"))
    again = org_db.run(lambda s: runtime.deploy(s, [shipped / "capa.bpmn"], ROOT / "forms", "qiang.li", T0,
                                                settings_file=shipped / "settings.yaml"))
    assert [(d.process_key, d.version, d.created) for d in again] == [("capa", 1, False)]
    capa = org_db.run(lambda s: store.get_definition(s, "capa", 1))
    assert not [name for name in capa.artifacts if name.startswith("dmn/")]
    service = org_db.run(lambda s: store.get_definition(s, "after_sales_service", 1))
    assert "dmn/problem_level.dmn" in service.artifacts
