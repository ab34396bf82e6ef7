"""Decision tables (DMN) that refuse what they cannot decide.

SpiffWorkflow's DMN engine returns nothing when no rule of a table matches, and the process then
runs on with the table's outputs missing (or stale from an earlier round). A business rule task
whose table has no rule for its inputs is a gap in the table, so here it is an error naming the
table, its file and the input values it was given; the command that ran it changes nothing.
"""

from SpiffWorkflow.dmn.engine.DMNEngine import DMNEngine
from SpiffWorkflow.dmn.specs.model import HitPolicy


class NoRuleMatched(Exception):
    """A decision table has no rule for the inputs it was given; the message names both."""


class StrictDecision(DMNEngine):
    """A DMN engine whose single-hit tables raise :class:`NoRuleMatched` instead of deciding nothing."""

    def __init__(self, decision, file_name: str | None):
        super().__init__(decision.decisionTables[0])
        self.decision = decision
        self.file_name = file_name

    def result(self, task) -> dict:
        """The outputs of the first matching rule (all matches for a COLLECT table); NoRuleMatched when none."""
        if self.decision_table.hit_policy != HitPolicy.COLLECT.value and not self.decide(task):
            raise NoRuleMatched(self._unmatched_message(task))
        return super().result(task)

    def _unmatched_message(self, task) -> str:
        values = ", ".join(f"{item.expression or item.label}={self._input_value(item, task)!r}"
                           for item in self.decision_table.inputs)
        name = f" ({self.decision.name})" if self.decision.name else ""
        where = f" in {self.file_name}" if self.file_name else ""
        return (f"decision table '{self.decision.id}'{name}{where} has no rule for the inputs {values}: "
                f"correct the inputs, or add a rule to the table")

    @staticmethod
    def _input_value(item, task):
        try:
            return task.workflow.script_engine.evaluate(task, item.expression)
        except Exception:  # the message is about the gap; an input that cannot be read is shown as such
            return "(not available)"
