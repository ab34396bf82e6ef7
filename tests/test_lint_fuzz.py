"""Lint never raises: the shipped procedures and the lint fixtures, mutated at random, get problems, not tracebacks.

Hypothesis drops attributes and elements, points references at nothing, rewrites texts and truncates
the file; whatever comes out, ``definitions.check`` must return its problems (and no check may give
up on the file), and ``definitions.prepare`` must either succeed or raise DefinitionError.
"""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from conftest import FIXTURES, ORG_FILE, ROOT
from engine import definitions
from engine.directory import Organisation
from engine.errors import DefinitionError

ORG = Organisation.from_yaml(ORG_FILE.read_text(encoding="utf-8"))
SEEDS = sorted(p for p in (ROOT / "processes").iterdir() if p.suffix in (".bpmn", ".dmn")) + \
    sorted((FIXTURES / "processes" / "lint").iterdir())
TEXTS = st.sampled_from(["", "-", "PT1D", '"PT1D"', "x >", "${a}", "ghost", "'", "__import__('os')", "< 3",
                         "[1..2]", "R/PT1H", "\u4e2d\u6587", "1e309", "((", "?"])


def _mutate(data, text: str) -> str:
    """Apply a few random edits to the XML ``text``; may also return it truncated (not well-formed)."""
    root = etree.fromstring(text.encode("utf-8"))
    elements = [el for el in root.iter() if isinstance(el.tag, str)]
    for _ in range(data.draw(st.integers(1, 4))):
        element = data.draw(st.sampled_from(elements))
        edit = data.draw(st.sampled_from(["drop_attribute", "break_attribute", "drop_element", "set_text"]))
        if edit in ("drop_attribute", "break_attribute") and element.attrib:
            name = data.draw(st.sampled_from(sorted(element.attrib)))
            if edit == "drop_attribute":
                del element.attrib[name]
            else:
                element.set(name, data.draw(TEXTS))
        elif edit == "drop_element" and element.getparent() is not None:
            element.getparent().remove(element)
            elements = [el for el in root.iter() if isinstance(el.tag, str)]
        elif edit == "set_text":
            element.text = data.draw(TEXTS)
    mutated = etree.tostring(root, encoding="unicode")
    if data.draw(st.booleans()) and data.draw(st.integers(0, 9)) == 0:
        mutated = mutated[:data.draw(st.integers(0, len(mutated)))]
    return mutated


@pytest.mark.parametrize("seed", SEEDS, ids=lambda p: p.name)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_lint_reports_but_never_raises_on_a_mutated_file(seed: Path, tmp_path, data):
    path = tmp_path / seed.name
    path.write_text(_mutate(data, seed.read_text(encoding="utf-8")), encoding="utf-8")
    forms = ROOT / "forms" if seed.parent.name == "processes" else FIXTURES / "forms"
    checked = definitions.check([path], ORG, forms)
    assert not [p for p in checked.problems if "could not finish" in p.message]
    assert all(p.file == str(path) or p.file.endswith(".yaml") for p in checked.problems)
    try:
        definitions.prepare([path], ORG, forms)
    except DefinitionError:
        pass
