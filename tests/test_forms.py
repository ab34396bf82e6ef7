"""Forms: YAML definitions compile to JSON Schema; submissions are coerced and every bad field is named."""

from pathlib import Path

import pytest

from engine.errors import DefinitionError, FormError
from engine.forms import Form, load_form_file

ROOT = Path(__file__).resolve().parent.parent

ALL_TYPES = Form.from_yaml("""
key: sample
title: {en: Sample, zh: 样例}
fields:
  - {name: text_field, type: text, required: true, max_length: 5, pattern: '^[A-Z]+$'}
  - {name: number_field, type: number, min: 0.5}
  - {name: integer_field, type: integer, min: 1, max: 5}
  - {name: date_field, type: date}
  - {name: datetime_field, type: datetime}
  - {name: choice_field, type: choice, choices: [{value: a}, {value: b}]}
  - {name: multi_field, type: multi-choice, choices: [{value: a}, {value: b}]}
  - {name: bool_field, type: boolean}
""", "sample.yaml")


def test_strings_from_a_command_line_are_coerced_to_field_types():
    clean = ALL_TYPES.validate({"text_field": "ABC", "number_field": "2.5", "integer_field": "3",
                                "date_field": "2026-11-02", "datetime_field": "2026-11-02T09:30:00+08:00",
                                "choice_field": "a", "multi_field": "a, b", "bool_field": "是"})
    assert clean == {"text_field": "ABC", "number_field": 2.5, "integer_field": 3, "date_field": "2026-11-02",
                     "datetime_field": "2026-11-02T09:30:00+08:00", "choice_field": "a", "multi_field": ["a", "b"],
                     "bool_field": True}


def test_every_bad_field_is_named_with_the_reason():
    with pytest.raises(FormError) as caught:
        ALL_TYPES.validate({"text_field": "abc", "number_field": "x", "integer_field": "9", "date_field": "2026-02-30",
                            "datetime_field": "yesterday", "choice_field": "c", "multi_field": "a,c",
                            "bool_field": "maybe"})
    assert caught.value.problems == {
        "text_field": "does not match the pattern ^[A-Z]+$", "number_field": "must be a number",
        "integer_field": "must be at most 5", "date_field": "must be a date (YYYY-MM-DD)",
        "datetime_field": "must be a date and time (ISO 8601)", "choice_field": "must be one of: a, b",
        "multi_field": "must be one of: a, b", "bool_field": "must be yes or no (true/false)"}


def test_required_field_missing_or_blank_is_reported():
    with pytest.raises(FormError, match="text_field: is required"):
        ALL_TYPES.validate({"text_field": " "})


def test_blank_optional_field_is_dropped():
    assert ALL_TYPES.validate({"text_field": "AB", "number_field": ""}) == {"text_field": "AB"}


def test_json_schema_lists_required_fields_and_forbids_others():
    schema = ALL_TYPES.json_schema()
    assert schema["required"] == ["text_field"] and schema["additionalProperties"] is False
    assert schema["properties"]["integer_field"] == {"type": "integer", "minimum": 1, "maximum": 5}


@pytest.mark.parametrize("body, message", [
    ("key: x\nfields:\n  - {name: a, type: colour}\n", "type 'colour' is not one of"),
    ("key: x\nfields:\n  - {name: a, type: choice}\n", "a choice field needs choices"),
    ("key: x\nfields:\n  - {name: 'not valid', type: text}\n", "must be a Python identifier"),
    ("key: x\nfields:\n  - {name: a}\n  - {name: a}\n", "field names used twice: a"),
    ("key: x\nfields:\n  - {name: a, colour: red}\n", "unknown keys: colour"),
])
def test_malformed_form_file_is_rejected_with_the_reason(body, message):
    with pytest.raises(DefinitionError, match=message):
        Form.from_yaml(body, "x.yaml")


def test_form_key_must_match_file_name(tmp_path):
    path = tmp_path / "other.yaml"
    path.write_text("key: x\nfields: []\n")
    with pytest.raises(DefinitionError, match="differs from the file name 'other'"):
        load_form_file(path)


@pytest.mark.parametrize("path", sorted((ROOT / "forms").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_forms_load_with_english_and_chinese_labels(path):
    form = load_form_file(path)
    assert form.title.get("en") and form.title.get("zh")
    for field in form.fields:
        assert field.label.get("en") and field.label.get("zh"), field.name
