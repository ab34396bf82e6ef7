"""Runtime behaviour on the gateway_condition fixture: routing, permissions, forms, bad input changes nothing."""

import pytest

from conftest import T0, at, deploy_fixture, fingerprint
from engine import runtime, store
from engine.errors import DefinitionError, ExpressionError, Forbidden, FormError, InvalidTransition, NotFound

SALES, SALES_2, QUALITY, QUALITY_HEAD = "li.zhou", "hao.wu", "mei.wang", "qiang.li"


def start(db, actor=SALES, **kwargs):
    return db.run(lambda s: runtime.start(s, "gateway_condition", actor, T0, **kwargs).id)


def open_tasks(db, instance_id):
    return db.run(lambda s: [(t.id, t.name, t.department) for t in
                             store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK)])


def complete(db, task_id, actor, data, minutes=10):
    return db.run(lambda s: runtime.complete(s, task_id, actor, at(minutes), data).name)


def status(db, instance_id):
    return db.run(lambda s: store.get_instance(s, instance_id).status)


def test_start_routes_first_task_to_start_lane_department(gateway_db):
    instance_id = start(gateway_db)
    assert [(name, dept) for _, name, dept in open_tasks(gateway_db, instance_id)] == [("request", "sales")]


def test_only_start_lane_department_may_start(gateway_db):
    with pytest.raises(Forbidden, match="started by department 'sales'"):
        start(gateway_db, actor=QUALITY)


def test_unknown_process_is_refused_naming_what_is_deployed(gateway_db):
    with pytest.raises(NotFound, match="no such process: 'nope'.*gateway_condition"):
        gateway_db.run(lambda s: runtime.start(s, "nope", SALES, T0))


def test_condition_routes_large_amount_to_quality(gateway_db):
    instance_id = start(gateway_db)
    [(task_id, _, _)] = open_tasks(gateway_db, instance_id)
    complete(gateway_db, task_id, SALES, {"amount": "25"})
    assert [(n, d) for _, n, d in open_tasks(gateway_db, instance_id)] == [("review", "quality")]


def test_default_flow_ends_small_amount(gateway_db):
    instance_id = start(gateway_db)
    [(task_id, _, _)] = open_tasks(gateway_db, instance_id)
    complete(gateway_db, task_id, SALES, {"amount": 5})
    assert status(gateway_db, instance_id) == "completed"
    assert open_tasks(gateway_db, instance_id) == []


def _at_review(db):
    instance_id = start(db)
    [(task_id, _, _)] = open_tasks(db, instance_id)
    complete(db, task_id, SALES, {"amount": 25})
    [(review_id, _, _)] = open_tasks(db, instance_id)
    return instance_id, review_id


def test_user_outside_department_is_refused_and_nothing_changes(gateway_db):
    _, review_id = _at_review(gateway_db)
    before = fingerprint(gateway_db)
    with pytest.raises(Forbidden, match="belongs to department 'quality'.*'li.zhou' is not a member"):
        complete(gateway_db, review_id, SALES, {"approved": True})
    assert fingerprint(gateway_db) == before


def test_head_task_refuses_plain_member(gateway_db):
    instance_id, review_id = _at_review(gateway_db)
    complete(gateway_db, review_id, QUALITY, {"approved": True})
    [(approve_id, name, _)] = open_tasks(gateway_db, instance_id)
    assert name == "approve"
    with pytest.raises(Forbidden, match="needs the head of 'quality' \\(qiang.li\\)"):
        complete(gateway_db, approve_id, QUALITY, {"approved": True})
    complete(gateway_db, approve_id, QUALITY_HEAD, {"approved": True})
    assert status(gateway_db, instance_id) == "completed"


def test_invalid_form_names_every_bad_field_and_changes_nothing(gateway_db):
    instance_id = start(gateway_db)
    [(task_id, _, _)] = open_tasks(gateway_db, instance_id)
    before = fingerprint(gateway_db)
    with pytest.raises(FormError) as caught:
        complete(gateway_db, task_id, SALES, {"amount": "-3", "note": "x" * 30, "colour": "red"})
    assert caught.value.problems == {"amount": "must be at least 0", "note": "must be at most 20 characters",
                                     "colour": "is not a field of form 'request'"}
    assert fingerprint(gateway_db) == before


def test_missing_required_field_is_named(gateway_db):
    instance_id = start(gateway_db)
    [(task_id, _, _)] = open_tasks(gateway_db, instance_id)
    with pytest.raises(FormError, match="amount: is required"):
        complete(gateway_db, task_id, SALES, {})


def test_completing_a_done_task_is_refused_with_who_did_it(gateway_db):
    instance_id = start(gateway_db)
    [(task_id, _, _)] = open_tasks(gateway_db, instance_id)
    complete(gateway_db, task_id, SALES, {"amount": 25})
    before = fingerprint(gateway_db)
    with pytest.raises(InvalidTransition, match=f"task {task_id} .* is already completed by li.zhou"):
        complete(gateway_db, task_id, SALES, {"amount": 25})
    assert fingerprint(gateway_db) == before


def test_unknown_task_is_refused(gateway_db):
    with pytest.raises(NotFound, match="no such task: 999"):
        complete(gateway_db, 999, SALES, {"amount": 1})


def test_unknown_user_is_refused(gateway_db):
    with pytest.raises(NotFound, match="no such user: 'ghost'"):
        start(gateway_db, actor="ghost")


def test_claimed_task_can_only_be_completed_by_its_assignee(gateway_db):
    instance_id = start(gateway_db)
    [(task_id, _, _)] = open_tasks(gateway_db, instance_id)
    gateway_db.run(lambda s: runtime.claim(s, task_id, SALES, at(1)))
    with pytest.raises(Forbidden, match="claimed by li.zhou"):
        complete(gateway_db, task_id, SALES_2, {"amount": 1})
    with pytest.raises(InvalidTransition, match="already claimed by li.zhou"):
        gateway_db.run(lambda s: runtime.claim(s, task_id, SALES_2, at(2)))


def test_unclaim_returns_task_to_department_inbox(gateway_db):
    instance_id = start(gateway_db)
    [(task_id, _, _)] = open_tasks(gateway_db, instance_id)
    gateway_db.run(lambda s: runtime.claim(s, task_id, SALES, at(1)))
    with pytest.raises(Forbidden, match="only they or the head"):
        gateway_db.run(lambda s: runtime.unclaim(s, task_id, SALES_2, at(2)))
    gateway_db.run(lambda s: runtime.unclaim(s, task_id, SALES, at(3)))
    inbox = gateway_db.run(lambda s: [(t.id, t.status, t.assignee) for t in store.inbox(s, ["sales"], runtime.ACTIVE_TASK)])
    assert inbox == [(task_id, "open", None)]
    complete(gateway_db, task_id, SALES_2, {"amount": 1})


def test_cancel_withdraws_open_tasks(gateway_db):
    instance_id = start(gateway_db)
    [(task_id, _, _)] = open_tasks(gateway_db, instance_id)
    gateway_db.run(lambda s: runtime.cancel(s, instance_id, SALES, at(5), "customer withdrew"))
    assert status(gateway_db, instance_id) == "cancelled"
    assert gateway_db.run(lambda s: store.get_task(s, task_id).status) == "cancelled"
    with pytest.raises(InvalidTransition, match="it is already cancelled"):
        complete(gateway_db, task_id, SALES, {"amount": 1})


def test_cancel_by_unrelated_member_is_refused(gateway_db):
    instance_id = start(gateway_db)
    with pytest.raises(Forbidden, match="only its starter"):
        gateway_db.run(lambda s: runtime.cancel(s, instance_id, QUALITY, at(5), "no"))


def test_business_key_is_unique_per_process(gateway_db):
    start(gateway_db, business_key="CC-1")
    with pytest.raises(InvalidTransition, match="already has an instance with key 'CC-1'"):
        start(gateway_db, business_key="CC-1")


def test_state_survives_reload_between_steps(gateway_db):
    runtime._definitions.clear()  # as a new process would: nothing cached
    instance_id, review_id = _at_review(gateway_db)
    runtime._definitions.clear()
    complete(gateway_db, review_id, QUALITY, {"approved": False})
    runtime._definitions.clear()
    data = gateway_db.run(lambda s: runtime.instance_data(store.get_instance(s, instance_id)))
    assert data["amount"] == 25 and data["approved"] is False


@pytest.mark.parametrize("condition, refusal", [
    ("__import__('os').getcwd() != ''", "names starting with '_' are not allowed"),
    ("open('/etc/passwd') is not None", "uses 'open'"),
    ("len(().__class__.__base__.__subclasses__()) &gt; 0", "names starting with '_' are not allowed"),
])
def test_forbidden_condition_is_refused_at_deploy_with_its_line(org_db, tmp_path, condition, refusal):
    before = fingerprint(org_db)
    with pytest.raises(DefinitionError, match=refusal) as caught:
        deploy_fixture(org_db, "gateway_condition", {"amount &gt; 10": condition}, tmp_path)
    assert caught.value.line and fingerprint(org_db) == before


@pytest.mark.parametrize("condition, refusal", [("amount &gt; undefined_limit", "undefined_limit")])
def test_failing_condition_is_refused_and_leaves_instance_as_it_was(org_db, tmp_path, condition, refusal):
    deploy_fixture(org_db, "gateway_condition", {"amount &gt; 10": condition}, tmp_path)
    instance_id = start(org_db)
    [(task_id, _, _)] = open_tasks(org_db, instance_id)
    before = fingerprint(org_db)
    with pytest.raises(ExpressionError) as caught:
        complete(org_db, task_id, SALES, {"amount": 25})
    assert "Large? 金额大?" in str(caught.value) and refusal in str(caught.value)
    assert fingerprint(org_db) == before
    assert open_tasks(org_db, instance_id) == [(task_id, "request", "sales")]


def test_task_of_another_department_cannot_be_read(gateway_db):
    _, review_id = _at_review(gateway_db)
    with pytest.raises(Forbidden, match="'li.zhou' is not a member of department 'quality'"):
        gateway_db.run(lambda s: runtime.describe_task(s, review_id, SALES))


def test_task_view_says_why_a_member_may_not_complete_a_head_task(gateway_db):
    instance_id, review_id = _at_review(gateway_db)
    complete(gateway_db, review_id, QUALITY, {"approved": True})
    [(approve_id, _, _)] = open_tasks(gateway_db, instance_id)
    blocked = gateway_db.run(lambda s: runtime.describe_task(s, approve_id, QUALITY).blocked)
    assert "needs the head of 'quality' (qiang.li)" in blocked
    assert gateway_db.run(lambda s: runtime.describe_task(s, approve_id, QUALITY_HEAD).blocked) is None


def test_instance_is_visible_to_departments_it_has_tasks_in(gateway_db):
    instance_id, _ = _at_review(gateway_db)
    assert gateway_db.run(lambda s: runtime.visible_instance(s, instance_id, QUALITY).id) == instance_id
    assert gateway_db.run(lambda s: runtime.visible_instance(s, instance_id, SALES_2).id) == instance_id


def test_instance_is_hidden_from_uninvolved_departments(gateway_db):
    instance_id, _ = _at_review(gateway_db)
    with pytest.raises(Forbidden, match=f"'wei.zhang' may not see instance {instance_id}.*quality, sales"):
        gateway_db.run(lambda s: runtime.visible_instance(s, instance_id, "wei.zhang"))


def test_startable_lists_only_processes_of_ones_start_department(gateway_db):
    assert [r.process_key for r in gateway_db.run(lambda s: runtime.startable(s, SALES))] == ["gateway_condition"]
    assert gateway_db.run(lambda s: runtime.startable(s, QUALITY)) == []


def test_tasks_a_command_creates_are_whole_once_it_has_committed(gateway_db):
    # As `qproc start` and `qproc complete` print them: the new tasks, read in the command, used after it.
    instance_id, created = gateway_db.run(lambda s: (lambda i: (i.id, store.tasks_of_instance(s, i.id)))(
        runtime.start(s, "gateway_condition", SALES, T0, business_key="K-1")))
    [task] = created
    assert (task.name, task.status, task.assignee, task.completed_at, task.data, task.escalated_to,
            task.instance.business_key) == ("request", "open", None, None, None, None, "K-1")
    [after] = gateway_db.run(lambda s: (runtime.complete(s, task.id, SALES, at(1), {"amount": 50}),
                                        store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK))[1])
    assert (after.status, after.assignee, after.data, after.instance.business_key) == ("open", None, None, "K-1")
