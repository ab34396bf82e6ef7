"""Call activities and business rule tasks: each names a process or decision found in the files checked together."""

from . import Problem
from .bpmn import describe, is_bpmn, line, spiff_extension, text

_CAMUNDA = "http://camunda.org/schema/1.0/bpmn"


def check(file: str, root, process_ids: set[str], decision_ids: set[str]) -> list[Problem]:
    """A call activity's ``calledElement`` is a process id and a business rule task's
    ``spiffworkflow:calledDecisionId`` a decision id among the files checked (deployed) together."""
    problems = []
    for element in root.iter():
        if is_bpmn(element, "callActivity"):
            called = element.get("calledElement")
            if not called:
                problems.append(Problem(file, line(element), f"{describe(element)} names no process to call "
                                        "(attribute calledElement)"))
            elif called not in process_ids:
                problems.append(Problem(file, line(element), f"{describe(element)} calls process '{called}', which "
                                        f"no file checked with it defines (processes: {_listing(process_ids)})"))
        elif is_bpmn(element, "businessRuleTask"):
            decision = text(spiff_extension(element, "calledDecisionId"))
            if not decision:
                foreign = element.get(f"{{{_CAMUNDA}}}decisionRef")
                hint = f" (camunda:decisionRef '{foreign}' is Camunda's, qproc does not read it)" if foreign else ""
                problems.append(Problem(file, line(element), f"{describe(element)} names no decision "
                                        f"(spiffworkflow:calledDecisionId){hint}"))
            elif decision not in decision_ids:
                problems.append(Problem(file, line(element), f"{describe(element)} calls decision '{decision}', which "
                                        f"no DMN file checked with it defines (decisions: {_listing(decision_ids)})"))
    return problems


def _listing(ids: set[str]) -> str:
    return ", ".join(sorted(ids)) or "none"
