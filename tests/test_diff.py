"""qproc diff: each kind of change a revision can make, said once, in the process owner's words."""

from conftest import FIXTURES, T0, deploy_fixture
from engine import diff, runtime


def texts(db, process):
    return [c.text for c in db.run(lambda s: diff.versions(s, process, 1, 2)).changes]


def test_renamed_step_changed_condition_and_unchanged_rest(org_db, tmp_path):
    deploy_fixture(org_db, "gateway_condition")
    deploy_fixture(org_db, "gateway_condition", {"amount &gt; 10": "amount &gt; 100",
                                                 'name="Review request 评审"': 'name="Check request 审核"'}, tmp_path)
    assert texts(org_db, "gateway_condition") == [
        "Step renamed: 'Review request 评审' is now 'Check request 审核' (review).",
        "Condition changed: at 'Large? 金额大?' (gw_amount) the way to 'Check request 审核' (review) is now "
        "`amount > 100` (was `amount > 10`)."]


def test_changed_timer_and_deadline(org_db, tmp_path):
    deploy_fixture(org_db, "boundary_timer")
    deploy_fixture(org_db, "boundary_timer", {'"PT4H"': '"PT8H"'}, tmp_path)
    assert texts(org_db, "boundary_timer") == [
        "Timer changed: '4 h passed 超过4小时' (review_timeout) waits \"PT8H\" instead of \"PT4H\"."]
    deploy_fixture(org_db, "task_deadlines")
    deploy_fixture(org_db, "task_deadlines", {'value="P2D"': 'value="P3D"'}, tmp_path)
    assert texts(org_db, "task_deadlines") == [
        "Deadline changed: 'Review request 评审' (review) is due P3D (working time) from task (was P2D (working "
        "time) from task)."]


CHOICES = "    choices: [{{value: low, label: {{en: Low}}}}, {{value: {}, label: {{en: Other}}}}]\n"


def test_form_fields_added_removed_required_and_choices(org_db, tmp_path):
    deploy_fixture(org_db, "gateway_condition")
    forms = tmp_path / "forms"
    forms.mkdir()
    for form in (FIXTURES / "forms").glob("*.yaml"):
        (forms / form.name).write_text(form.read_text(encoding="utf-8"), encoding="utf-8")
    request = forms / "request.yaml"
    request.write_text(request.read_text(encoding="utf-8")
                       .replace("    required: true\n    min: 0\n", "    min: 0\n")
                       .replace("  - name: note\n    type: text\n    max_length: 20\n",
                                "  - name: urgency\n    type: choice\n    required: true\n" + CHOICES.format("high"))
                       .replace("    label: {en: Note, zh: 备注}\n", "    label: {en: Urgency, zh: 紧急程度}\n"),
                       encoding="utf-8")
    org_db.run(lambda s: runtime.deploy(s, [FIXTURES / "processes" / "gateway_condition.bpmn"], forms, "qiang.li", T0))
    assert texts(org_db, "gateway_condition") == [
        "Form 'request': field 'urgency' added (required).",
        "Form 'request': field 'note' removed.",
        "Form 'request': field 'amount' made optional."]
    request.write_text(request.read_text(encoding="utf-8").replace(CHOICES.format("high"), CHOICES.format("medium")),
                       encoding="utf-8")
    org_db.run(lambda s: runtime.deploy(s, [FIXTURES / "processes" / "gateway_condition.bpmn"], forms, "qiang.li", T0))
    assert [c.text for c in org_db.run(lambda s: diff.versions(s, "gateway_condition", 2, 3)).changes] == [
        "Form 'request': choices of field 'urgency' changed: added medium; removed high."]
