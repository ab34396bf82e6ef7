"""Replay: an instance re-executed from its pinned version and recorded inputs matches what is stored."""

from datetime import timedelta

from sqlalchemy import update

from conftest import T0, at, deploy_fixture, tamper
from engine import demo, replay, runtime, snapshot, store, timers
from engine.store import EventRow

SALES, QUALITY, QUALITY_HEAD = "li.zhou", "mei.wang", "qiang.li"


def _large_request(db, approve=True):
    instance_id = db.run(lambda s: runtime.start(s, "gateway_condition", SALES, T0).id)
    steps = [("request", SALES, {"amount": 50, "note": "rush"}), ("review", QUALITY, {"approved": "yes"})]
    if approve:
        steps.append(("approve", QUALITY_HEAD, {"approved": "yes"}))
    for minutes, (name, actor, data) in enumerate(steps, start=1):
        [task] = db.run(lambda s: store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK))
        assert task.name == name
        if name == "review":
            db.run(lambda s: runtime.claim(s, task.id, actor, at(minutes)))
        db.run(lambda s: runtime.complete(s, task.id, actor, at(minutes), data))
    return instance_id


def _replay(db, instance_id):
    return db.run(lambda s: replay.replay(s, instance_id))


def test_completed_instance_replays_to_match(gateway_db):
    instance_id = _large_request(gateway_db)
    result = _replay(gateway_db, instance_id)
    assert result.match and result.divergence is None and result.events > 10


def test_running_instance_replays_to_match(gateway_db):
    assert _replay(gateway_db, _large_request(gateway_db, approve=False)).match


def test_cancelled_instance_replays_to_match(gateway_db):
    instance_id = _large_request(gateway_db, approve=False)
    gateway_db.run(lambda s: runtime.cancel(s, instance_id, SALES, at(9), "withdrawn"))
    assert _replay(gateway_db, instance_id).match


def test_replay_all_reports_each_instance_and_progress(gateway_db):
    ids = [_large_request(gateway_db), _large_request(gateway_db, approve=False)]
    ticks = []
    results = gateway_db.run(lambda s: replay.replay_all(s, lambda done, total: ticks.append((done, total))))
    assert [(r.instance_id, r.match) for r in results] == [(i, True) for i in ids]
    assert ticks == [(1, 2), (2, 2)]


def test_signed_complaint_with_a_verification_loop_replays_to_match(complaint_db):
    instance_id = demo.run_scenario(complaint_db, demo.SCENARIOS[2], T0)
    assert complaint_db.run(lambda s: replay.replay(s, instance_id)).match


def test_task_row_data_altered_behind_the_engine_is_a_divergence(gateway_db):
    instance_id = _large_request(gateway_db)
    tamper(gateway_db, "UPDATE tasks SET completed_by = 'hao.wu' WHERE name = 'review'")
    divergence = _replay(gateway_db, instance_id).divergence
    assert "stored task row 2 'review' differs from the replay: at completed_by, stored 'hao.wu', replay 'mei.wang'" \
        == divergence


def test_status_altered_behind_the_engine_is_a_divergence(gateway_db):
    instance_id = _large_request(gateway_db)
    tamper(gateway_db, "UPDATE instances SET status = 'cancelled' WHERE id = :i", i=instance_id)
    assert _replay(gateway_db, instance_id).divergence == "stored status is cancelled, the replay ends completed"


def test_snapshot_altered_behind_the_engine_is_a_divergence(gateway_db):
    instance_id = _large_request(gateway_db)
    state = snapshot.as_json(gateway_db.run(lambda s: store.get_instance(s, instance_id).state))
    tamper(gateway_db, "UPDATE instances SET state = :state WHERE id = :i", i=instance_id,
           state=state.replace('"rush"', '"slow"'))
    divergence = _replay(gateway_db, instance_id).divergence
    assert divergence.startswith("stored snapshot, step ") and "at data.note, stored 'slow', replay 'rush'" in divergence


def test_submitted_data_changed_in_the_history_diverges_at_the_gateway(gateway_db):
    instance_id = _large_request(gateway_db)
    tamper(gateway_db, update(EventRow).where(EventRow.instance_id == instance_id, EventRow.seq == 4)
           .values(data={"task": "request", "form": "request", "data": {"amount": 5, "note": "rush"}}))
    divergence = _replay(gateway_db, instance_id).divergence
    assert divergence == ("event #5: the history records step 'gw_amount' → review, the replay produced step "
                          "'gw_amount' → end_small: at next, stored ['review'], replay ['end_small']")


def test_instance_pointed_at_another_version_is_a_divergence(gateway_db, tmp_path):
    instance_id = _large_request(gateway_db)
    deploy_fixture(gateway_db, "gateway_condition", {"amount &gt; 10": "amount &gt; 100"}, tmp_path)
    tamper(gateway_db, "UPDATE instances SET definition_id = 2 WHERE id = :i", i=instance_id)
    assert "was recorded under definition" in _replay(gateway_db, instance_id).divergence


# --- timers: a firing is a recorded input, replayed at its time -----------------------------------

def test_instance_whose_interrupting_timer_the_worker_fired_replays_to_match(org_db):
    deploy_fixture(org_db, "boundary_timer")
    instance_id = org_db.run(lambda s: runtime.start(s, "boundary_timer", QUALITY, T0).id)
    timers.fire_due(org_db, at(5 * 60))
    [chase] = org_db.run(lambda s: store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK))
    org_db.run(lambda s: runtime.complete(s, chase.id, QUALITY_HEAD, at(6 * 60), {"approved": "yes"}))
    assert _replay(org_db, instance_id).match


def test_timer_fired_inside_a_users_completion_replays_to_match(org_db, tmp_path):
    deploy_fixture(org_db, "boundary_timer", {'cancelActivity="true"': 'cancelActivity="false"'}, tmp_path)
    instance_id = org_db.run(lambda s: runtime.start(s, "boundary_timer", QUALITY, T0).id)
    [review] = org_db.run(lambda s: store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK))
    org_db.run(lambda s: runtime.complete(s, review.id, QUALITY, at(5 * 60), {"approved": "yes"}))  # timer due at 4 h
    kinds = [e.kind for e in org_db.run(lambda s: store.events_of(s, instance_id))]
    assert kinds.index("timer_fired") < kinds.index("task_completed")
    assert _replay(org_db, instance_id).match


def test_working_time_timer_and_escalations_replay_to_match(org_db):
    deploy_fixture(org_db, "intermediate_timer")
    instance_id = org_db.run(lambda s: runtime.start(s, "intermediate_timer", SALES, T0).id)
    [request] = org_db.run(lambda s: store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK))
    org_db.run(lambda s: runtime.complete(s, request.id, SALES, at(1), {"amount": 5}))
    timers.fire_due(org_db, at(7 * 24 * 60))
    assert _replay(org_db, instance_id).match


def test_a_complaint_escalated_to_the_general_manager_replays_to_match(complaint_db):
    instance_id = complaint_db.run(lambda s: runtime.start(s, "customer_complaint", SALES, T0).id)
    timers.fire_due(complaint_db, at(8 * 60))
    [intake] = complaint_db.run(lambda s: store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK))
    assert intake.escalated_to == "guoqiang.feng"
    assert _replay(complaint_db, instance_id).match


def test_an_instance_started_by_its_timer_start_event_replays_to_match(org_db):
    deploy_fixture(org_db, "timer_start_cycle")
    timers.fire_due(org_db, T0 + timedelta(days=70))
    [instance] = org_db.run(lambda s: store.list_instances(s))
    assert _replay(org_db, instance.id).match


def test_a_timer_firing_the_workflow_does_not_expect_is_a_divergence(org_db):
    deploy_fixture(org_db, "boundary_timer")
    instance_id = org_db.run(lambda s: runtime.start(s, "boundary_timer", QUALITY, T0).id)
    timers.fire_due(org_db, at(5 * 60))
    tamper(org_db, "UPDATE events SET at = :early WHERE instance_id = :i AND kind = 'timer_fired'",
           early=at(60).replace(tzinfo=None), i=instance_id)
    result = _replay(org_db, instance_id)
    assert not result.match and "fires timer 'review_timeout'" in result.divergence
