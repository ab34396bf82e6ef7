"""The in-process caches make commands cheaper, never different: other writers and failed commands are seen."""

import pytest

from conftest import T0, at, deploy_fixture
from engine import cache, runtime, store
from engine.errors import ExpressionError
from engine.store import Database

SALES, QUALITY, QUALITY_HEAD = "li.zhou", "mei.wang", "qiang.li"


def _open_task(db, instance_id):
    return db.run(lambda s: store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK)[0].id)


def _complete(db, task_id, actor, data):
    return db.run(lambda s: runtime.complete(s, task_id, actor, at(10), data).instance.status)


def test_completion_sees_a_change_another_process_made_meanwhile(gateway_db):
    other = Database(gateway_db.url)  # a second process: its own connections and caches
    instance_id = gateway_db.run(lambda s: runtime.start(s, "gateway_condition", SALES, T0).id)
    _complete(gateway_db, _open_task(gateway_db, instance_id), SALES, {"amount": 25})
    _complete(other, _open_task(other, instance_id), QUALITY, {"approved": "yes"})
    assert _complete(gateway_db, _open_task(gateway_db, instance_id), QUALITY_HEAD, {"approved": "yes"}) == "completed"
    other.dispose()


def test_completion_after_a_failed_one_starts_from_the_stored_state(org_db, tmp_path):
    deploy_fixture(org_db, "gateway_condition", {"amount &gt; 10": "100 / amount &gt; 1"}, tmp_path)
    instance_id = org_db.run(lambda s: runtime.start(s, "gateway_condition", SALES, T0).id)
    task_id = _open_task(org_db, instance_id)
    with pytest.raises(ExpressionError):
        _complete(org_db, task_id, SALES, {"amount": 0})  # the task runs, then the condition divides by zero
    assert _complete(org_db, task_id, SALES, {"amount": 500}) == "completed"


def test_kept_workflow_is_not_taken_for_a_different_stored_state(gateway_db):
    instance_id = gateway_db.run(lambda s: runtime.start(s, "gateway_condition", SALES, T0).id)

    def take_after_state_changed(session):
        instance = store.get_instance(session, instance_id)
        instance.state = instance.state + " "
        return cache.take_workflow(session, instance)
    assert gateway_db.run(take_after_state_changed) is None


def test_workflow_is_kept_only_when_the_command_commits(gateway_db):
    instance_id = gateway_db.run(lambda s: runtime.start(s, "gateway_condition", SALES, T0).id)
    assert gateway_db.run(lambda s: cache.take_workflow(s, store.get_instance(s, instance_id))) is not None
    assert gateway_db.run(lambda s: cache.take_workflow(s, store.get_instance(s, instance_id))) is None
