"""Migration: running instances moved to the active version on purpose, keeping their deadlines, on the record."""

from datetime import timedelta

import pytest

from conftest import FIXTURES, T0, deploy_fixture, fingerprint
from engine import audit, corrections, evidence, migration, replay, runtime, store, timers
from engine.errors import Forbidden, FormError, InvalidTransition

ADD_STEP = {  # revision A/1 of boundary_timer: a reviewed request is recorded before it ends
    '<bpmn:sequenceFlow id="f_review" sourceRef="review" targetRef="end_reviewed" />':
        '<bpmn:sequenceFlow id="f_review" sourceRef="review" targetRef="record" />'
        '<bpmn:sequenceFlow id="f_record" sourceRef="record" targetRef="end_reviewed" />',
    '<bpmn:userTask id="chase"':
        '<bpmn:userTask id="record" name="Record the review 记录"><bpmn:extensionElements><spiffworkflow:properties>'
        '<spiffworkflow:property name="form" value="review" /></spiffworkflow:properties></bpmn:extensionElements>'
        '</bpmn:userTask><bpmn:userTask id="chase"',
    "<bpmn:flowNodeRef>chase</bpmn:flowNodeRef>": "<bpmn:flowNodeRef>chase</bpmn:flowNodeRef><bpmn:flowNodeRef>record"
                                                  "</bpmn:flowNodeRef>",
}
REMOVE_REVIEW = {  # a revision where a head decides at once: the review is gone
    '<bpmn:sequenceFlow id="f_start" sourceRef="start" targetRef="review" />':
        '<bpmn:sequenceFlow id="f_start" sourceRef="start" targetRef="chase" />',
    '<bpmn:sequenceFlow id="f_review" sourceRef="review" targetRef="end_reviewed" />': "",
    '<bpmn:sequenceFlow id="f_timeout" sourceRef="review_timeout" targetRef="chase" />': "",
}
HOUR = timedelta(hours=1)


@pytest.fixture
def boundary_db(org_db):
    deploy_fixture(org_db, "boundary_timer")
    return org_db


def start(db, now=T0) -> int:
    return db.run(lambda s: runtime.start(s, "boundary_timer", "mei.wang", now).id)


def open_tasks(db, instance_id):
    return db.run(lambda s: [(t.name, t.due_at) for t in store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK)])


def revise(db, tmp_path, replacements):
    [result] = deploy_fixture(db, "boundary_timer", replacements, tmp_path)
    assert (result.version, result.status) == (2, "active")


def test_migration_keeps_the_timer_due_time_and_the_task_deadline(boundary_db, tmp_path):
    instance_id = start(boundary_db)
    [(name, due)] = open_tasks(boundary_db, instance_id)
    assert (name, due) == ("review", T0 + 4 * HOUR)
    boundary_db.run(lambda s: runtime.claim(s, store.tasks_of_instance(s, instance_id)[0].id, "mei.wang", T0))
    revise(boundary_db, tmp_path, ADD_STEP)
    boundary_db.run(lambda s: migration.migrate(s, instance_id, 2, "qiang.li", T0 + HOUR, "record every review"))
    assert open_tasks(boundary_db, instance_id) == [("review", T0 + 4 * HOUR)]
    assert boundary_db.run(lambda s: store.tasks_of_instance(s, instance_id)[0].assignee) == "mei.wang"
    assert timers.fire_due(boundary_db, T0 + 4 * HOUR - timedelta(minutes=1)) == []
    timers.fire_due(boundary_db, T0 + 4 * HOUR + timedelta(minutes=1))  # Spiff alone would wait until 5 h
    assert [name for name, _ in open_tasks(boundary_db, instance_id)] == ["chase"]
    assert boundary_db.run(lambda s: replay.replay(s, instance_id)).match


def test_migrated_instance_takes_the_new_versions_path_and_replays_as_recorded(boundary_db, tmp_path):
    instance_id = start(boundary_db)
    revise(boundary_db, tmp_path, ADD_STEP)
    boundary_db.run(lambda s: migration.migrate(s, instance_id, 2, "qiang.li", T0 + HOUR, "record every review"))
    [review] = boundary_db.run(lambda s: store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK))
    boundary_db.run(lambda s: runtime.complete(s, review.id, "mei.wang", T0 + 2 * HOUR, {"approved": True}))
    assert [name for name, _ in open_tasks(boundary_db, instance_id)] == ["record"]
    assert boundary_db.run(lambda s: store.get_instance(s, instance_id).definition.version) == 2
    event = next(e for e in boundary_db.run(lambda s: audit.history(s, instance_id)) if e.kind == "instance_migrated")
    assert (event.actor, event.data["from"], event.data["to"], event.data["reason"]) == \
        ("qiang.li", 1, 2, "record every review")
    assert event.data["timers_kept"] == [{"timer": "review_timeout", "due": (T0 + 4 * HOUR).isoformat()}]
    assert boundary_db.run(lambda s: replay.replay(s, instance_id)).match
    assert boundary_db.run(audit.verify).problems == []


def test_a_completed_task_keeps_the_form_it_was_answered_on_after_migrating_to_a_version_without_it(boundary_db,
                                                                                                  tmp_path):
    record_checks = {**ADD_STEP, '<bpmn:userTask id="chase"': ADD_STEP['<bpmn:userTask id="chase"'].replace(
        '"form" value="review" /></spiffworkflow:properties></bpmn:extensionElements></bpmn:userTask><bpmn:userTask id="chase"',
        '"form" value="check" /></spiffworkflow:properties></bpmn:extensionElements></bpmn:userTask><bpmn:userTask id="chase"')}
    revise(boundary_db, tmp_path, record_checks)  # v2: review (form review), then record (form check)
    instance_id = start(boundary_db)
    [review] = boundary_db.run(lambda s: store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK))
    boundary_db.run(lambda s: runtime.complete(s, review.id, "mei.wang", T0 + HOUR, {"approved": True}))
    v3 = tmp_path / "v3"
    v3.mkdir()
    source = (tmp_path / "boundary_timer.bpmn").read_text(encoding="utf-8")
    (v3 / "boundary_timer.bpmn").write_text(source.replace('value="review"', 'value="check"'), encoding="utf-8")
    [result] = boundary_db.run(lambda s: runtime.deploy(s, [v3 / "boundary_timer.bpmn"], FIXTURES / "forms",
                                                        "qiang.li", T0))
    assert "review" not in runtime.definition_of(boundary_db.run(
        lambda s: store.get_definition(s, "boundary_timer", result.version))).forms
    boundary_db.run(lambda s: migration.migrate(s, instance_id, result.version, "qiang.li", T0 + 2 * HOUR,
                                                "record checks"))
    pack = boundary_db.run(lambda s: evidence.collect(s, instance_id, "qiang.li", T0 + 3 * HOUR))
    assert [(f["task"], f["form"], list(f["labels"])) for f in pack["forms"]] == [("review", "review", ["approved"])]
    assert boundary_db.run(lambda s: runtime.describe_task(s, review.id).form.key) == "review"
    boundary_db.run(lambda s: corrections.correct(s, review.id, "mei.wang", T0 + 3 * HOUR, {"approved": False},
                                                  "misread the sample"))
    with pytest.raises(FormError, match="approved"):
        boundary_db.run(lambda s: corrections.correct(s, review.id, "mei.wang", T0 + 3 * HOUR, {"approved": "maybe"},
                                                      "a value the review form refuses"))

def test_migration_away_from_a_task_the_new_version_removes_is_refused_naming_it(boundary_db, tmp_path):
    instance_id = start(boundary_db)
    revise(boundary_db, tmp_path, REMOVE_REVIEW)
    before = fingerprint(boundary_db)
    with pytest.raises(InvalidTransition, match=r"version 2 removes 'Review 评审' \(review\) \(ready\)"):
        boundary_db.run(lambda s: migration.migrate(s, instance_id, 2, "qiang.li", T0 + HOUR, "head decides"))
    assert fingerprint(boundary_db) == before
    plan = boundary_db.run(lambda s: migration.migrate(s, instance_id, 2, "qiang.li", T0 + HOUR, "", dry_run=True))
    assert not plan.allowed and plan.waiting_on == ["review"]
    assert fingerprint(boundary_db) == before


def test_migrating_a_whole_version_moves_all_or_none(boundary_db, tmp_path):
    first, second = start(boundary_db), start(boundary_db)
    revise(boundary_db, tmp_path, ADD_STEP)
    plans = boundary_db.run(lambda s: migration.migrate_all(s, "boundary_timer", 1, 2, "qiang.li", T0 + HOUR, "",
                                                            dry_run=True))
    assert [(p.instance_id, p.allowed) for p in plans] == [(first, True), (second, True)]
    boundary_db.run(lambda s: migration.migrate_all(s, "boundary_timer", 1, 2, "qiang.li", T0 + HOUR, "all of them"))
    assert boundary_db.run(lambda s: [i.id for i in store.list_instances(s, process_key="boundary_timer",
                                                                         version=2)]) == [second, first]
    assert all(r.match for r in boundary_db.run(replay.replay_all))


def test_only_a_head_migrates_and_only_with_a_reason_to_the_active_version(boundary_db, tmp_path):
    instance_id = start(boundary_db)
    revise(boundary_db, tmp_path, ADD_STEP)
    with pytest.raises(Forbidden, match="only a department head"):
        boundary_db.run(lambda s: migration.migrate(s, instance_id, 2, "mei.wang", T0 + HOUR, "why not"))
    with pytest.raises(InvalidTransition, match="give a reason"):
        boundary_db.run(lambda s: migration.migrate(s, instance_id, 2, "qiang.li", T0 + HOUR, " "))
    with pytest.raises(InvalidTransition, match="already runs on version 1"):
        boundary_db.run(lambda s: migration.migrate(s, instance_id, 1, "qiang.li", T0 + HOUR, "back"))


def test_a_waiting_task_the_new_version_moves_lands_in_the_new_departments_inbox(org_db):
    def deploy(path):
        org_db.run(lambda s: runtime.deploy(s, [path], FIXTURES / "complaint_forms", "qiang.li", T0,
                                            settings_file=FIXTURES / "processes" / "complaint_settings.yaml"))

    def answer(actor, data, minutes):
        [task] = org_db.run(lambda s: store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK))
        org_db.run(lambda s: runtime.complete(s, task.id, actor, T0 + timedelta(minutes=minutes), data))
        return task

    deploy(FIXTURES / "processes" / "complaint_original.bpmn")
    instance_id = org_db.run(lambda s: runtime.start(s, "customer_complaint", "li.zhou", T0).id)
    answer("li.zhou", {"customer": "Hangzhou Motors", "contact": "Zhao", "product_model": "QX-200",
                       "channel": "email", "complaint_type": "quality", "description": "E07"}, 10)
    answer("jian.tang", {"proceed": "proceed"}, 20)
    answer("mei.wang", {"facts_verified": "yes", "nonconformity": "not_reproducible", "responsibility": "not_ours"}, 30)
    [explain] = org_db.run(lambda s: store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK))
    assert (explain.name, explain.department) == ("explain_to_customer", "sales")
    intake = org_db.run(lambda s: store.tasks_of_instance(s, instance_id)[0])
    org_db.run(lambda s: corrections.correct(s, intake.id, "li.zhou", T0 + timedelta(minutes=40),
                                             {"contact": "Zhao Lei"}, "full name"))
    deploy(FIXTURES / "processes" / "complaint_revised.bpmn")
    org_db.run(lambda s: migration.migrate(s, instance_id, 2, "qiang.li", T0 + HOUR, "quality explains now"))
    assert org_db.run(lambda s: runtime.instance_data(store.get_instance(s, instance_id)))["contact"] == "Zhao Lei"
    [moved] = org_db.run(lambda s: store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK))
    assert (moved.id, moved.department, moved.due_at) == (explain.id, "quality", explain.due_at)
    with pytest.raises(Forbidden, match="not a member|quality"):
        org_db.run(lambda s: runtime.complete(s, moved.id, "li.zhou", T0 + 2 * HOUR, {}))
    assert org_db.run(lambda s: replay.replay(s, instance_id)).match


def test_qproc_migrate_names_the_blocking_task_and_exits_1(boundary_db, tmp_path):
    from click.testing import CliRunner

    from cli import main

    instance_id = start(boundary_db)
    revise(boundary_db, tmp_path, REMOVE_REVIEW)

    def qproc(*args):
        result = CliRunner().invoke(main, ["--db", boundary_db.url, "--as", "qiang.li", *args], catch_exceptions=False)
        return result.exit_code, result.output

    code, out = qproc("migrate", str(instance_id), "--to", "2", "--dry-run")
    assert code == 0 and f"instance {instance_id} (-): would move from version 1 to 2, waiting on review — blocked: " \
                          f"version 2 removes 'Review 评审' (review) (ready)" in out
    code, out = qproc("migrate", "--process", "boundary_timer", "--from", "1", "--to", "2", "--reason", "head decides")
    assert code == 1 and "version 2 removes 'Review 评审' (review) (ready), " in out
    assert out.rstrip().endswith("which the instance has not finished (none of the 1 instances was migrated)")
