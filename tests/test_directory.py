"""The organisation: lane names resolve to departments; membership and head role are enforced."""

import pytest

from conftest import ORG_FILE
from engine.directory import Organisation
from engine.errors import DefinitionError, Forbidden

ORG = Organisation.from_yaml(ORG_FILE.read_text(encoding="utf-8"))


@pytest.mark.parametrize("lane, department", [
    ("quality", "quality"), ("Quality", "quality"), ("Quality 质量部", "quality"), ("品管部", "quality"),
    ("Sales / 营销部", "sales"), ("R&D 研发部", "rnd"), ("Management representative 管理者代表", "mgmt_rep"),
    ("General manager 总经理", "gm"),
])
def test_lane_names_resolve_by_key_english_or_chinese_name(lane, department):
    assert ORG.department_for_lane(lane) == department


@pytest.mark.parametrize("lane", ["Purchasing 采购部", "Quality Sales"])
def test_unknown_or_ambiguous_lane_resolves_to_nothing(lane):
    assert ORG.department_for_lane(lane) is None


def test_shipped_organisation_has_every_department_with_a_head_and_two_members():
    keys = {"sales", "service", "quality", "engineering", "tech_support", "tech_mgmt", "rnd", "mgmt_rep", "gm",
            "finance", "warehouse", "hr"}
    assert set(ORG.departments) == keys
    for dept in ORG.departments.values():
        assert dept.head in dept.members and len(dept.members) >= 2 and dept.zh


def test_member_of_other_department_is_forbidden_with_department_named():
    with pytest.raises(Forbidden, match="belongs to department 'quality' \\(Quality 质量部\\); 'li.zhou' is not"):
        ORG.check_may_act("li.zhou", "quality", None, "task 1")


def test_head_role_needs_the_head():
    ORG.check_may_act("qiang.li", "quality", "head", "task 1")
    with pytest.raises(Forbidden, match="needs the head"):
        ORG.check_may_act("mei.wang", "quality", "head", "task 1")


def test_department_naming_unknown_user_is_rejected():
    raw = {"departments": [{"key": "q", "en": "Q", "head": "a", "members": ["a", "b"]}],
           "users": [{"id": "a", "name": "A"}]}
    with pytest.raises(DefinitionError, match="department 'q' names unknown user 'b'"):
        Organisation.from_dict(raw)


def test_head_outside_members_is_rejected():
    raw = {"departments": [{"key": "q", "en": "Q", "head": "a", "members": ["b"]}],
           "users": [{"id": "a", "name": "A"}, {"id": "b", "name": "B"}]}
    with pytest.raises(DefinitionError, match="head 'a' of department 'q' is not among its members"):
        Organisation.from_dict(raw)


def test_yaml_syntax_error_names_file_and_line():
    with pytest.raises(DefinitionError, match="^org.yaml:2: invalid YAML"):
        Organisation.from_yaml("departments:\n\t- key: a\n", "org.yaml")
