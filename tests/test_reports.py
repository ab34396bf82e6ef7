"""Reports on six months of generated history: every figure of `qproc report monthly --json` is checked
against a count made here, independently, from the events each instance's history holds."""

import json
import shutil
import statistics
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner

from cli import BROWSERS, main
from conftest import ORG_FILE, ROOT, empty_database
from engine import audit, credentials, sample_history, store
from engine.store import Database

TZ = ZoneInfo("Asia/Shanghai")
END = datetime(2026, 12, 1, 9, 0, tzinfo=TZ)
NOV, DEC = datetime(2026, 11, 1, tzinfo=TZ), datetime(2026, 12, 1, tzinfo=TZ)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def generated(request, tmp_path_factory):
    """Six months of history (about 40 complaints) ending 1 December 2026, and its URL, on each backend."""
    with empty_database(request.param, tmp_path_factory.mktemp("generated"), request) as url:
        db = Database(url)
        db.upgrade()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(credentials, "_HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
            summary = sample_history.generate(db, 6, END, ORG_FILE, ROOT / "calendar.yaml", ROOT / "processes",
                                              seed=3, per_week=1.6)
        histories = db.run(lambda s: {i.id: (i, audit.history(s, i.id))
                                      for i in store.list_instances(s, limit=10000)})
        db.dispose()
        yield url, summary, histories


@pytest.fixture(scope="module")
def report(generated):
    """`qproc report monthly --month 2026-11 --json`, by figure key."""
    url = generated[0]
    result = CliRunner().invoke(main, ["--db", url, "--now", END.isoformat(), "report", "monthly", "--month",
                                       "2026-11", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return {f["key"]: f for f in json.loads(result.output)["figures"]}


# --- the independent count -------------------------------------------------------------------

def _completions(events, task):
    return [e for e in events if e.kind == "task_completed" and e.data["task"] == task]


def _created(events, task):
    created = {e.task_id for e in events if e.kind == "task_created" and e.data["task"] == task}
    return [e for e in events if e.kind == "task_created" and e.task_id in created]


def _in_november(moment):
    return NOV <= moment < DEC


def _complaints(generated):
    """Per complaint: its start event, start data, complaint form and events before December, from its events alone."""
    found = []
    for instance, every in generated[2].values():
        events = [e for e in every if e.at < DEC]  # the report for November reads nothing later
        if not events:
            continue
        started = events[0]
        form = {}
        for intake in _completions(events, "intake"):
            form.update(intake.data["data"])
        found.append((instance.id, started, started.data["data"], form, events))
    return found


def _count_on_time(items):
    """(hours, on_time) pairs → count, on time, median hours, nearest-rank P90 hours."""
    hours = sorted(h for h, _ in items)
    p90 = hours[max(0, -(-9 * len(hours) // 10) - 1)] if hours else None
    return {"count": len(items), "on_time": sum(ok for _, ok in items),
            "median_hours": round(statistics.median(hours), 2) if hours else None, "p90_hours": p90}


def _hours(a, b):
    return round((b - a).total_seconds() / 3600, 2)


# --- the checks ------------------------------------------------------------------------------

def test_generated_history_is_varied(generated):
    _, summary, histories = generated
    complaints = _complaints(generated)
    kinds = {e.data["data"].get("responsibility") for _, _, _, _, events in complaints
             for e in events if e.kind == "task_completed" and e.data["task"] == "quality_review"}
    ineffective = [i for i, _, _, _, events in complaints
                   if any(not e.data["data"]["effective"] for e in _completions(events, "verify_effectiveness"))]
    assert summary.complaints == len(histories) >= 30
    assert len({form.get("customer") for _, _, _, form, _ in complaints}) >= 10
    assert kinds == {"ours", "not_ours"} and ineffective and summary.open_complaints > 0


def test_complaints_received_match(generated, report):
    received = [i for i, started, _, _, _ in _complaints(generated) if _in_november(started.at)]
    assert report["complaints_received"]["value"] == len(received) > 0
    assert [r["instance"] for r in report["complaints_received"]["rows"]] == sorted(received)


def test_response_time_matches(generated, report):
    items = []
    for _, started, settings, form, events in _complaints(generated):
        replies = sorted(_completions(events, "reply_customer") + _completions(events, "explain_to_customer"),
                         key=lambda e: e.seq)
        if replies and _in_november(replies[0].at):
            asked = form.get("customer_deadline")
            deadline = (datetime.combine(date.fromisoformat(asked), time.max, tzinfo=TZ) if asked
                        else started.at + timedelta(days=settings["reply_deadline_days"]))
            items.append((_hours(started.at, replies[0].at), replies[0].at <= deadline))
    expected = _count_on_time(items)
    assert {k: report["response_time"]["stats"][k] for k in expected} == expected
    assert expected["count"] > 0


def test_closure_time_matches(generated, report):
    items = []
    for _, started, settings, _, events in _complaints(generated):
        closed = [e for e in events if e.kind == "instance_completed"]
        if closed and _in_november(closed[0].at):
            items.append((_hours(started.at, closed[0].at),
                           closed[0].at <= started.at + timedelta(days=settings["closure_deadline_days"])))
    expected = _count_on_time(items)
    assert {k: report["closure_time"]["stats"][k] for k in expected} == expected
    assert expected["count"] > 0


def test_quality_notice_matches(generated, report):
    items = []
    for _, started, _, _, events in _complaints(generated):
        reviews = _created(events, "quality_review")
        if reviews and _in_november(reviews[0].at):
            due = datetime.fromisoformat(_created(events, "intake")[0].data["due"])
            items.append((_hours(started.at, reviews[0].at), reviews[0].at <= due))
    expected = _count_on_time(items)
    assert {k: report["quality_notice"]["stats"][k] for k in expected} == expected


def test_capa_effectiveness_and_on_time_closure_match(generated, report):
    first_verified, closed = [], []
    for instance_id, _, _, _, events in _complaints(generated):
        verifications = _completions(events, "verify_effectiveness")
        if verifications and _in_november(verifications[0].at):
            first_verified.append(verifications[0].data["data"]["effective"])
        closures = _completions(events, "close_capa")
        if closures and _in_november(closures[0].at):
            planned = date.fromisoformat(_completions(events, "plan_actions")[0].data["data"]["planned_completion"])
            closed.append(closures[0].at <= datetime.combine(planned, time.max, tzinfo=TZ))
    assert report["capa_effectiveness"]["stats"] == {"count": len(first_verified), "effective": sum(first_verified)}
    assert report["capa_on_time"]["stats"] == {"count": len(closed), "on_time": sum(closed)}
    assert closed


def test_failure_causes_of_the_quarter_to_date_match(generated, report):
    counts = {}
    for _, _, _, _, events in _complaints(generated):
        opened = _created(events, "form_team")
        if opened and datetime(2026, 10, 1, tzinfo=TZ) <= opened[0].at < DEC:
            analyses = _completions(events, "analyse_root_cause")
            cause = analyses[-1].data["data"]["failure_cause"] if analyses else "(not analysed yet)"
            counts[cause] = counts.get(cause, 0) + 1
    figure = report["failure_causes"]
    assert {row["cause"]: row["count"] for row in figure["tables"]["by cause"]} == counts
    assert figure["value"] == max(counts.values()) and figure["met"] == (max(counts.values()) <= 10)


def test_repeat_complaints_match(generated, report):
    complaints = [(started.at, form["customer"].strip().casefold(), form["product_model"].strip().casefold(), i)
                  for i, started, _, form, _ in _complaints(generated) if form]
    def six_months_before(moment):  # November's complaints reach back into May, which has every day
        local = moment.astimezone(TZ)
        return local.replace(month=local.month - 6)

    repeats = sorted(i for at, customer, product, i in complaints if _in_november(at) and any(
        (c, p) == (customer, product) and six_months_before(at) <= other < at for other, c, p, _ in complaints))
    assert sorted(r["instance"] for r in report["repeat_complaints"]["rows"]) == repeats


def test_satisfaction_matches(generated, report):
    scores, asked, answered = [], 0, 0
    for _, _, _, _, events in _complaints(generated):
        scores += [e.data["data"]["satisfaction_score"] for e in _completions(events, "confirm_satisfaction")
                   if _in_november(e.at)]
        created = [e.task_id for e in _created(events, "confirm_satisfaction") if _in_november(e.at)]
        done = {e.task_id for e in _completions(events, "confirm_satisfaction")}
        asked, answered = asked + len(created), answered + len([t for t in created if t in done])
    figure = report["satisfaction"]
    assert figure["value"] == round(statistics.fmean(scores), 2)
    assert (figure["stats"]["responses"], figure["stats"]["asked"], figure["stats"]["answered"]) == (
        len(scores), asked, answered)


def test_steps_on_time_and_escalations_match(generated, report):
    steps, escalated = [], 0
    for _, _, _, _, events in _complaints(generated):
        due = {e.task_id: datetime.fromisoformat(e.data["due"]) for e in events
               if e.kind == "task_created" and "due" in e.data}
        steps += [e.at <= due[e.task_id] for e in events
                  if e.kind == "task_completed" and e.task_id in due and _in_november(e.at)]
        escalated += sum(1 for e in events if e.kind == "task_escalated" and _in_november(e.at))
    assert report["on_time_tasks"]["stats"] == {"count": len(steps), "on_time": sum(steps)}
    assert report["escalations"]["value"] == escalated > 0


def test_overdue_complaints_match(generated, report):
    overdue = sorted(i for i, started, settings, _, events in _complaints(generated)
                     if not any(e.kind in ("instance_completed", "instance_cancelled") and e.at < DEC for e in events)
                     and started.at + timedelta(days=settings["closure_deadline_days"]) < DEC)
    rows = report["overdue"]["rows"]
    assert sorted(r["instance"] for r in rows if r["kind"] == "complaint") == overdue


def test_html_report_holds_charts_tables_and_the_instances_behind_them(generated, report, tmp_path):
    url = generated[0]
    result = CliRunner().invoke(main, ["--db", url, "--now", END.isoformat(), "report", "monthly", "--month",
                                       "2026-11", "--out", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0 and "complaints-monthly-2026-11.html" in result.output
    page = (tmp_path / "complaints-monthly-2026-11.html").read_text(encoding="utf-8")
    assert page.count("<svg") >= 5 and "Pareto of failure causes" in page and "Data behind the chart" in page
    first = report["response_time"]["rows"][0]["instance"]
    assert f"title='qproc show {first}'" in page
    assert "<td class='miss'>missed</td>" in page or "<td class='met'>met</td>" in page
    assert "<td>Sales 销售部</td>" in page  # departments named as the organisation names them


def test_review_report_covers_the_year_by_month(generated):
    url = generated[0]
    result = CliRunner().invoke(main, ["--db", url, "--now", END.isoformat(), "report", "review", "--year", "2026",
                                       "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    review = json.loads(result.output)
    assert [row["month"] for row in review["trend"]][0] == "2026-06"
    assert {row["quarter"] for row in next(f for f in review["figures"] if f["key"] == "failure_causes")
            ["tables"]["by quarter"]} >= {"2026-Q3", "2026-Q4"}


def _qproc(url, *args):
    result = CliRunner().invoke(main, ["--db", url, "--now", END.isoformat(), *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_kpi_prints_the_running_month_against_targets(generated):
    code, out = _qproc(generated[0], "kpi")
    assert code == 0 and "Current figures" in out and "2026-12 to date" in out and "Overdue items" in out


def test_a_month_written_wrongly_is_a_usage_error(generated):
    code, out = _qproc(generated[0], "report", "monthly", "--month", "2026-13")
    assert code == 2 and "'2026-13' is not a month written YYYY-MM" in out


def test_a_month_not_yet_begun_is_refused_with_exit_1(generated):
    code, out = _qproc(generated[0], "report", "monthly", "--month", "2027-01", "--json")
    assert code == 1 and "no history for 2027-01 yet" in out


def test_generating_into_a_database_with_instances_is_refused(generated):
    code, out = _qproc(generated[0], "demo", "--months", "1")
    assert code == 1 and "already has instances" in out and "use an empty database" in out


@pytest.mark.skipif(not any(shutil.which(b) for b in BROWSERS), reason="no Chromium to print with")
def test_pdf_is_printed_beside_the_page(generated, tmp_path):
    code, out = _qproc(generated[0], "report", "monthly", "--month", "2026-11", "--out", str(tmp_path), "--pdf")
    assert code == 0, out
    assert (tmp_path / "complaints-monthly-2026-11.pdf").read_bytes().startswith(b"%PDF")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["complaints-monthly-2026-11.html",
                                                         "complaints-monthly-2026-11.pdf"]


def test_link_makes_instance_numbers_lead_to_the_instance_page(generated, report, tmp_path):
    code, _ = _qproc(generated[0], "report", "monthly", "--month", "2026-11", "--out", str(tmp_path),
                     "--link", "http://qproc.local/instances/{id}")
    page = (tmp_path / "complaints-monthly-2026-11.html").read_text(encoding="utf-8")
    first = report["complaints_received"]["rows"][0]["instance"]
    assert code == 0 and f"<a class='id' href='http://qproc.local/instances/{first}'>{first}</a>" in page
