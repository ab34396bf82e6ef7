"""The shipped customer satisfaction survey / return visit (P5, 客户满意度), driven path by path."""

import pytest

from conftest import T0, at, fingerprint
from engine import replay, runtime
from engine.errors import ExpressionError, FormError
from walk import complete, deploy_shipped, edited_settings, ended_at, history, open_tasks, outcome, walk

CONTACT = {"customer": "Hangzhou Motors", "contact_person": "Mr. Zhao 0571-8888", "product_model": "QX-200",
           "contact_method": "visit", "contact_date": "2026-11-02"}
HAPPY = {"quality_score": "5", "delivery_score": "4", "service_score": "5", "response_score": "4",
         "technical_score": "5", "respondent": "Zhao Lei"}
UNHAPPY = {"quality_score": "2", "delivery_score": "4", "service_score": "3", "response_score": "1",
           "technical_score": "3", "respondent": "Zhao Lei", "customer_comments": "Slow to answer"}
FOLLOW_UP = {"low_score_cause": "Hotline unstaffed at lunch", "improvement_action": "Lunch rota for the hotline",
             "complaint_number": "CC-2026-014"}
REPLY = {"reply_summary": "Hotline now staffed 08:30-17:30", "reply_method": "call", "replied_on": "2026-11-05"}
ANSWERS = {"log_contact_sales": [CONTACT], "survey_by_sales": [HAPPY], "log_contact_service": [CONTACT],
           "survey_by_service": [HAPPY], "follow_up": [FOLLOW_UP], "reply_customer": [REPLY]}


@pytest.fixture
def survey_db(org_db):
    """The organisation plus the shipped customer satisfaction procedure."""
    deploy_shipped(org_db, "customer_satisfaction")
    return org_db


def survey(db, answers=None, starter="li.zhou", **kwargs):
    return walk(db, "customer_satisfaction", starter, {**ANSWERS, **(answers or {})}, **kwargs)


def test_satisfied_customer_surveyed_by_sales_is_closed(survey_db):
    done = survey(survey_db)
    assert done.inboxes == [("log_contact_sales", "sales"), ("survey_by_sales", "sales")]
    status, data = outcome(survey_db, done.instance_id)
    assert status == "completed"
    assert data["average_score"] == 4.6 and data["satisfied"] is True  # (5 + 4 + 5 + 4 + 5) / 5
    assert ended_at(survey_db, done.instance_id) == ["closed_satisfied"]


def test_low_score_on_a_return_visit_goes_to_quality_then_sales_replies(survey_db):
    done = survey(survey_db, {"survey_by_service": [UNHAPPY]}, starter="yan.sun", data={"conducted_by": "service"})
    assert done.inboxes == [("log_contact_service", "service"), ("survey_by_service", "service"),
                            ("follow_up", "quality"), ("reply_customer", "sales")]
    assert [who for _, _, who in done.steps] == ["yan.sun", "yan.sun", "mei.wang", "li.zhou"]
    status, data = outcome(survey_db, done.instance_id)
    assert status == "completed"
    assert data["average_score"] == 2.6 and data["satisfied"] is False  # (2 + 4 + 3 + 1 + 3) / 5
    assert data["complaint_number"] == "CC-2026-014"
    assert ended_at(survey_db, done.instance_id) == ["closed_followed_up"]
    assert survey_db.run(lambda s: replay.replay(s, done.instance_id)).match  # the score is re-derived alike


def test_low_score_taken_by_sales_follows_the_same_path(survey_db):
    done = survey(survey_db, {"survey_by_sales": [UNHAPPY]}, data={"conducted_by": "sales"})
    assert done.inboxes == [("log_contact_sales", "sales"), ("survey_by_sales", "sales"), ("follow_up", "quality"),
                            ("reply_customer", "sales")]


def test_history_records_the_score_and_the_decision(survey_db):
    done = survey(survey_db, {"survey_by_sales": [UNHAPPY]})
    events = history(survey_db, done.instance_id)
    [score] = [e for e in events if e.kind == "step_completed" and e.data["step"] == "score_survey"]
    [decision] = [e.data for e in events if e.kind == "step_completed" and e.data["step"] == "gw_satisfied"]
    assert decision["next"] == ["follow_up"]
    completions = [e for e in events if e.kind == "task_completed"]
    assert [e.actor for e in completions] == ["li.zhou", "li.zhou", "mei.wang", "li.zhou"]
    assert completions[1].data["data"]["response_score"] == 1 and completions[1].seq < score.seq
    assert events[-1].kind == "instance_completed" and events[-1].data["data"]["average_score"] == 2.6


BORDERLINE = {**HAPPY, "quality_score": "4", "delivery_score": "3", "service_score": "4", "response_score": "3",
              "technical_score": "3"}  # 17 / 5 = 3.4


def test_average_just_below_the_threshold_is_a_low_score(survey_db):
    done = survey(survey_db, {"survey_by_sales": [BORDERLINE]}, until="follow_up")
    assert outcome(survey_db, done.instance_id)[1]["average_score"] == 3.4  # the shipped threshold is 3.5
    assert [(t.name, t.department) for t in open_tasks(survey_db, done.instance_id)] == [("follow_up", "quality")]


@pytest.mark.parametrize("threshold, answers, satisfied", [(3.4, BORDERLINE, True), (4.8, HAPPY, False)])
def test_the_threshold_is_configuration_and_reaching_it_is_satisfied(survey_db, tmp_path, threshold, answers,
                                                                     satisfied):
    edited = edited_settings(tmp_path, lambda s: s["customer_satisfaction"].update(satisfaction_threshold=threshold))
    deploy_shipped(survey_db, "customer_satisfaction", settings_file=edited)
    done = survey(survey_db, {"survey_by_sales": [answers]}, until="follow_up")
    status, data = outcome(survey_db, done.instance_id)
    assert data["satisfied"] is satisfied
    assert (status, [t.department for t in open_tasks(survey_db, done.instance_id)]) == \
        (("completed", []) if satisfied else ("running", ["quality"]))


def test_answer_out_of_range_is_refused_with_the_field_named_and_changes_nothing(survey_db):
    done = survey(survey_db, until="survey_by_sales")
    [task] = open_tasks(survey_db, done.instance_id)
    before = fingerprint(survey_db)
    with pytest.raises(FormError) as refused:
        complete(survey_db, task.id, "li.zhou", at(90), {**HAPPY, "quality_score": "6", "delivery_score": "0",
                                                          "service_score": "4.5"})
    assert refused.value.problems == {"quality_score": "must be at most 5", "delivery_score": "must be at least 1",
                                      "service_score": "must be a whole number"}
    assert fingerprint(survey_db) == before


def test_missing_answer_is_refused(survey_db):
    done = survey(survey_db, until="survey_by_sales")
    [task] = open_tasks(survey_db, done.instance_id)
    without = {k: v for k, v in HAPPY.items() if k != "response_score"}
    with pytest.raises(FormError, match="response_score: is required"):
        complete(survey_db, task.id, "li.zhou", at(90), without)


def test_a_survey_for_another_department_is_refused_at_start_and_changes_nothing(survey_db):
    before = fingerprint(survey_db)
    with pytest.raises(ExpressionError, match="No conditions satisfied for gw_contact_department"):
        survey_db.run(lambda s: runtime.start(s, "customer_satisfaction", "li.zhou", T0,
                                              data={"conducted_by": "quality"}))
    assert fingerprint(survey_db) == before


def test_the_service_starts_a_return_visit_on_its_own(survey_db):
    instance_id = survey_db.run(lambda s: runtime.start(s, "customer_satisfaction", "peng.ma", T0,
                                                        data={"conducted_by": "service"}).id)
    assert [(t.name, t.department) for t in open_tasks(survey_db, instance_id)] == \
        [("log_contact_service", "service")]
