"""The benchmark's workload: a process of N sequential user tasks across four departments' lanes.

``bench/processes/sequential_8.bpmn`` is ``sequential_bpmn(8)`` written out (shipped so it can be
opened in a modeller and deployed by hand); the 100-task variant is generated on the fly. Every
odd step is recorded by a member of its department with ``bench_record``; every even step is
signed off by the department head with ``bench_approval``.
"""

from pathlib import Path

HERE = Path(__file__).resolve().parent
FORMS_DIR = HERE / "forms"
SHIPPED = HERE / "processes" / "sequential_8.bpmn"

# (lane name as the organisation knows it, department key)
LANES = (("Sales 销售部", "sales"), ("Quality 质量部", "quality"), ("Engineering 工程部", "engineering"),
         ("Management representative 管理者代表", "mgmt_rep"))

ANSWERS = {
    "bench_record": {"finding": "Connector J3 loose on 2 of 40 units checked 2/40 连接器松动", "quantity": "2",
                     "severity": "minor"},
    "bench_approval": {"decision": "approved", "comment": "Checked and signed 已核对"},
}


def process_key(steps: int) -> str:
    """The process id of the ``steps``-task benchmark process."""
    return f"bench_sequential_{steps}"


def step_form(index: int) -> str:
    """The form of step ``index`` (1-based): records on odd steps, head approvals on even ones."""
    return "bench_record" if index % 2 else "bench_approval"


def _user_task(index: int) -> str:
    role = "" if index % 2 else '\n          <spiffworkflow:property name="role" value="head" />'
    return f"""    <bpmn:userTask id="step_{index}" name="Step {index} 第{index}步">
      <bpmn:extensionElements>
        <spiffworkflow:properties>
          <spiffworkflow:property name="form" value="{step_form(index)}" />{role}
        </spiffworkflow:properties>
      </bpmn:extensionElements>
      <bpmn:incoming>f_{index - 1}</bpmn:incoming>
      <bpmn:outgoing>f_{index}</bpmn:outgoing>
    </bpmn:userTask>"""


def sequential_bpmn(steps: int) -> str:
    """BPMN text of a process with ``steps`` user tasks in a row, the lanes taking turns (start in Sales)."""
    lanes = {name: [] for name, _ in LANES}
    for index in range(1, steps + 1):
        lanes[LANES[(index - 1) % len(LANES)][0]].append(f"step_{index}")
    lanes[LANES[0][0]][:0] = ["start"]
    lanes[LANES[(steps - 1) % len(LANES)][0]].append("end")
    lane_xml = "\n".join(
        f'      <bpmn:lane id="lane_{key}" name="{name}">\n'
        + "\n".join(f"        <bpmn:flowNodeRef>{ref}</bpmn:flowNodeRef>" for ref in lanes[name])
        + "\n      </bpmn:lane>"
        for name, key in LANES if lanes[name])
    tasks = "\n".join(_user_task(i) for i in range(1, steps + 1))
    flows = "\n".join(
        f'    <bpmn:sequenceFlow id="f_{i}" sourceRef="{"start" if i == 0 else f"step_{i}"}" '
        f'targetRef="{"end" if i == steps else f"step_{i + 1}"}" />' for i in range(steps + 1))
    key = process_key(steps)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Benchmark workload (bench/process.py): {steps} sequential user tasks, the four lanes taking turns;
     odd steps are recorded by a member (form bench_record), even steps signed by the head (bench_approval). -->
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
                  id="defs_{key}" targetNamespace="http://qproc.bench">
  <bpmn:process id="{key}" name="Benchmark: {steps} sequential steps 基准测试" isExecutable="true">
    <bpmn:laneSet id="lanes">
{lane_xml}
    </bpmn:laneSet>
    <bpmn:startEvent id="start" name="Start">
      <bpmn:outgoing>f_0</bpmn:outgoing>
    </bpmn:startEvent>
{tasks}
    <bpmn:endEvent id="end" name="Done">
      <bpmn:incoming>f_{steps}</bpmn:incoming>
    </bpmn:endEvent>
{flows}
  </bpmn:process>
</bpmn:definitions>
"""


def write_process(steps: int, folder: Path) -> Path:
    """The ``steps``-task process as a file in ``folder`` (the shipped file for 8 steps)."""
    if steps == 8:
        return SHIPPED
    path = folder / f"{process_key(steps)}.bpmn"
    path.write_text(sequential_bpmn(steps), encoding="utf-8")
    return path


if __name__ == "__main__":
    SHIPPED.write_text(sequential_bpmn(8), encoding="utf-8")
    print(f"wrote {SHIPPED}")
