"""Due dates on human tasks: from task properties (durations, expressions, calendar or working time)."""

from datetime import datetime, timedelta, timezone

import pytest

from conftest import ORG_FILE, T0, deploy_fixture
from engine import audit, runtime, store
from engine.errors import DefinitionError, NotFound

FRIDAY_BEFORE_QINGMING = datetime(2026, 4, 3, 2, 0, tzinfo=timezone.utc)  # Friday 3 April 2026, 10:00 in Beijing


@pytest.fixture
def deadlines_db(org_db):
    deploy_fixture(org_db, "task_deadlines")
    return org_db


def open_task(db, instance_id):
    [task] = db.run(lambda s: store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK))
    return task


def test_task_due_from_the_instance_start(deadlines_db):
    instance_id = deadlines_db.run(lambda s: runtime.start(s, "task_deadlines", "li.zhou", T0).id)
    assert open_task(deadlines_db, instance_id).due_at == T0 + timedelta(hours=2)


def test_two_working_days_set_on_the_friday_before_a_holiday_fall_on_wednesday(deadlines_db):
    instance_id = deadlines_db.run(lambda s: runtime.start(s, "task_deadlines", "li.zhou", FRIDAY_BEFORE_QINGMING).id)
    request = open_task(deadlines_db, instance_id)
    deadlines_db.run(lambda s: runtime.complete(s, request.id, "li.zhou", FRIDAY_BEFORE_QINGMING, {"amount": "5"}))
    review = open_task(deadlines_db, instance_id)
    assert review.name == "review"
    assert review.due_at == datetime(2026, 4, 8, 2, 0, tzinfo=timezone.utc)  # Wednesday 8 April, 10:00 Beijing


def _approve_task(db, answer_by=None):
    instance_id = db.run(lambda s: runtime.start(s, "task_deadlines", "li.zhou", T0).id)
    request = open_task(db, instance_id)
    form = {"amount": "5", **({"answer_by": answer_by} if answer_by else {})}
    db.run(lambda s: runtime.complete(s, request.id, "li.zhou", T0, form))
    review = open_task(db, instance_id)
    db.run(lambda s: runtime.complete(s, review.id, "mei.wang", T0, {"approved": "yes"}))
    return open_task(db, instance_id)


def test_an_expression_duration_sets_the_due_time(deadlines_db):
    assert _approve_task(deadlines_db).due_at == T0 + timedelta(hours=24)


def test_an_earlier_due_by_date_wins_and_means_the_end_of_that_day_in_beijing(deadlines_db):
    task = _approve_task(deadlines_db, answer_by=T0.date().isoformat())
    assert task.due_at == datetime(2026, 11, 2, 16, 0, tzinfo=timezone.utc)  # midnight in Beijing


def test_a_later_due_by_date_leaves_the_duration_in_force(deadlines_db):
    assert _approve_task(deadlines_db, answer_by="2026-12-31").due_at == T0 + timedelta(hours=24)


def test_due_time_is_recorded_when_the_task_is_created(deadlines_db):
    instance_id = deadlines_db.run(lambda s: runtime.start(s, "task_deadlines", "li.zhou", T0).id)
    events = deadlines_db.run(lambda s: audit.history(s, instance_id))
    [created] = [e for e in events if e.kind == "task_created"]
    assert created.data["due"] == (T0 + timedelta(hours=2)).isoformat()


def test_inbox_lists_the_earliest_due_first(deadlines_db):
    late = deadlines_db.run(lambda s: runtime.start(s, "task_deadlines", "li.zhou", T0 + timedelta(hours=1)).id)
    early = deadlines_db.run(lambda s: runtime.start(s, "task_deadlines", "li.zhou", T0).id)
    rows = deadlines_db.run(lambda s: store.inbox(s, ["sales"], runtime.ACTIVE_TASK))
    assert [t.instance_id for t in rows] == [early, late]


@pytest.mark.parametrize("old, new, message", [
    ('name="due_in" value="working"', 'name="due_in" value="lunar"', "due_in must be one of calendar, working"),
    ('name="due_by" value="answer_by"', 'name="due_by" value="answer_bye"',
     "reads 'answer_bye', which no form field or setting of the process provides"),
    ('name="due_by" value="answer_by"', 'name="due_by" value="answer_by +"', "is not valid Python"),
    ('name="due_by" value="answer_by"', 'name="due_by" value="datetime.now()"', "reads the wall clock"),
])
def test_bad_deadline_property_is_refused_at_deploy_with_file_and_line(org_db, tmp_path, old, new, message):
    with pytest.raises(DefinitionError, match=message) as caught:
        deploy_fixture(org_db, "task_deadlines", {old: new}, tmp_path)
    assert caught.value.file_name == str(tmp_path / "task_deadlines.bpmn") and caught.value.line


def test_deadlines_need_a_business_calendar(db):
    db.run(lambda s: runtime.load_organisation(s, ORG_FILE, "admin", T0))
    with pytest.raises(NotFound, match="no business calendar is loaded"):
        deploy_fixture(db, "task_deadlines")
