"""Deployment: checked before anything is stored; versions are immutable and identified by content."""

import pytest

from conftest import FIXTURES, T0, deploy_fixture, fingerprint
from engine import runtime, store
from engine.errors import DefinitionError


def test_first_deploy_creates_version_1_and_same_content_is_a_no_op(org_db):
    [first] = deploy_fixture(org_db, "gateway_condition")
    [again] = deploy_fixture(org_db, "gateway_condition")
    assert (first.version, first.created) == (1, True)
    assert (again.version, again.created, again.content_hash) == (1, False, first.content_hash)


def test_changed_content_becomes_next_version_and_new_instances_use_it(org_db, tmp_path):
    deploy_fixture(org_db, "gateway_condition")
    [second] = deploy_fixture(org_db, "gateway_condition", {"amount &gt; 10": "amount &gt; 100"}, tmp_path)
    assert (second.version, second.created) == (2, True)
    instance = org_db.run(lambda s: runtime.start(s, "gateway_condition", "li.zhou", T0).definition.version)
    assert instance == 2


def test_changed_form_is_a_new_version(org_db, tmp_path):
    deploy_fixture(org_db, "gateway_condition")
    forms = tmp_path / "forms"
    forms.mkdir()
    for form in (FIXTURES / "forms").glob("*.yaml"):
        (forms / form.name).write_text(form.read_text().replace("max_length: 20", "max_length: 40"))
    [result] = org_db.run(lambda s: runtime.deploy(s, [FIXTURES / "processes" / "gateway_condition.bpmn"], forms,
                                                   "qiang.li", T0))
    assert (result.version, result.created) == (2, True)


def _deploy_text(db, tmp_path, text: str, name="broken.bpmn"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return db.run(lambda s: runtime.deploy(s, [path], FIXTURES / "forms", "qiang.li", T0))


def _fixture_text(**replacements) -> str:
    text = (FIXTURES / "processes" / "gateway_condition.bpmn").read_text(encoding="utf-8")
    for old, new in replacements.items():
        text = text.replace(old, new)
    return text


def test_malformed_xml_names_file_and_line_and_stores_nothing(org_db, tmp_path):
    before = fingerprint(org_db)
    text = _fixture_text().replace("</bpmn:userTask>", "</bpmn:task>", 1)
    with pytest.raises(DefinitionError, match=r"broken\.bpmn:\d+: malformed XML"):
        _deploy_text(org_db, tmp_path, text)
    assert fingerprint(org_db) == before


def test_lane_naming_no_department_is_a_deploy_error_with_line(org_db, tmp_path):
    text = _fixture_text()
    line = text[:text.index('name="Quality 质量部"')].count("\n") + 1
    with pytest.raises(DefinitionError, match=f"broken.bpmn:{line}: lane 'Purchasing 采购部' names no department"):
        _deploy_text(org_db, tmp_path, text.replace("Quality 质量部", "Purchasing 采购部"))


def test_user_task_without_form_is_a_deploy_error(org_db, tmp_path):
    text = _fixture_text().replace('<spiffworkflow:property name="form" value="request" />', "")
    with pytest.raises(DefinitionError, match="user task 'request' names no form"):
        _deploy_text(org_db, tmp_path, text)


def test_user_task_naming_missing_form_is_a_deploy_error(org_db, tmp_path):
    text = _fixture_text().replace('value="request"', 'value="no_such_form"')
    with pytest.raises(DefinitionError, match="names form 'no_such_form', but .*no_such_form.yaml does not exist"):
        _deploy_text(org_db, tmp_path, text)


def test_unknown_role_is_a_deploy_error(org_db, tmp_path):
    text = _fixture_text().replace('name="role" value="head"', 'name="role" value="boss"')
    with pytest.raises(DefinitionError, match="asks for unknown role 'boss'"):
        _deploy_text(org_db, tmp_path, text)


def test_schema_violation_names_file_and_line(org_db, tmp_path):
    text = _fixture_text().replace('<bpmn:incoming>f_start</bpmn:incoming>', '<bpmn:bogus/>', 1)
    with pytest.raises(DefinitionError, match=r"broken\.bpmn:\d+: .*bogus"):
        _deploy_text(org_db, tmp_path, text)


def test_deploy_needs_a_loaded_organisation(db):
    with pytest.raises(Exception, match="no organisation is loaded yet"):
        deploy_fixture(db, "gateway_condition")


def test_deployed_definition_pins_bpmn_and_forms(org_db):
    deploy_fixture(org_db, "gateway_condition")
    row = org_db.run(lambda s: store.latest_definition(s, "gateway_condition"))
    assert sorted(row.artifacts) == ["bpmn/gateway_condition.bpmn", "forms/request.yaml", "forms/review.yaml"]
