"""Sample history: months of realistic complaint handling, produced by running the real engine.

Complaints arrive a few times a week in office hours, from a dozen customers about seven product
models, so some customers complain about the same product again. Each is handled step by step by
a member (or the head) of the department its task lands in, after a delay drawn for that step,
snapped to office hours; now and then a step is slow. Outcomes vary: delivery complaints, not
our responsibility, CAPA plans rejected, corrective actions ineffective at first verification,
refused countersignatures, unsatisfied or silent customers, complaints withdrawn.

Every change is an ordinary engine command (start, complete, cancel) given its simulated moment
as ``now``, one transaction each, in time order across all complaints; nothing is written to the
tables directly. The same seed gives the same history.
"""

import heapq
import random
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from . import demo, runtime, store, timers
from .errors import InvalidTransition
from .periods import add_months
from .store import Database

OFFICE = ZoneInfo("Asia/Shanghai")
OPENS, CLOSES = time(8, 30), time(17, 30)
PROCESS = "customer_complaint"

CITIES = (("Hangzhou", "杭州"), ("Ningbo", "宁波"), ("Suzhou", "苏州"), ("Wuxi", "无锡"), ("Foshan", "佛山"),
          ("Qingdao", "青岛"), ("Shenzhen", "深圳"), ("Changzhou", "常州"), ("Xiamen", "厦门"), ("Hefei", "合肥"),
          ("Chengdu", "成都"), ("Tianjin", "天津"), ("Dongguan", "东莞"), ("Jinan", "济南"), ("Wuhan", "武汉"),
          ("Zhengzhou", "郑州"), ("Kunshan", "昆山"), ("Nantong", "南通"), ("Shenyang", "沈阳"), ("Nanjing", "南京"))
TRADES = (("Precision Motors", "精密电机"), ("Packaging Machinery", "包装机械"), ("Textile Equipment", "纺织设备"),
          ("Elevator Parts", "电梯配件"), ("Machine Tools", "机床"), ("Crane Works", "起重设备"),
          ("Robotics", "机器人"), ("Pump Works", "水泵"))
# 80 customers, a few large ones and a long tail (weight 1/rank^0.7): about a quarter of complaints are repeats.
_PAIRS = [(CITIES[i % 20], TRADES[(3 * i + i // 20) % 8]) for i in range(80)]
CUSTOMERS = tuple((f"{city[0]} {trade[0]} {city[1]}{trade[1]}", 1 / (rank + 1) ** 0.7)
                  for rank, (city, trade) in enumerate(_PAIRS))
PRODUCTS = (("QX-200 servo drive", 8), ("QX-400 servo drive", 5), ("VF-75 inverter", 6), ("VF-110 inverter", 4),
            ("VF-220 inverter", 2), ("PLC-8 controller", 3), ("HMI-7 operator panel", 2), ("EC-3 encoder", 2))
CAUSES = (("process", 38), ("material", 24), ("supplier", 16), ("design", 10), ("handling", 8), ("other", 4))
SYMPTOMS = ("Overcurrent fault E07 after 2 h of operation", "No display after power-on", "Encoder signal lost at speed",
            "Overheating alarm at 60% load", "Intermittent communication loss on the fieldbus",
            "Cracked housing on arrival", "Wrong firmware version installed", "Loose terminal block screws",
            "Motor vibration at low speed", "Brake resistor burnt")
ROOT_CAUSES = {
    "process": ("Solder voids on the power stage from a worn reflow profile", "Torque of terminal screws not checked",
                "Conformal coating skipped on one line"),
    "material": ("Capacitor batch below rated ripple current", "Housing resin with low impact strength"),
    "supplier": ("Supplier changed the IGBT module without notice", "Encoder disc from a new sub-supplier"),
    "design": ("Heat sink undersized for the 60% load case", "Firmware watchdog too short on slow networks"),
    "handling": ("Cartons stacked beyond the limit in transit", "ESD damage in the warehouse"),
    "other": ("Label mix-up at final packing",),
}
DELIVERY_ISSUES = ("Two units short in the shipment", "Delivered a week after the agreed date",
                   "Wrong voltage variant delivered")

# Median working delay in hours before each step is done, and the spread (log-normal sigma).
DELAYS = {"intake": (0.4, 0.5), "approve_proceed": (0.7, 0.6), "quality_review": (5, 0.7),
          "explain_to_customer": (16, 0.6), "form_team": (2, 0.6), "describe_problem": (3, 0.6),
          "contain_problem": (6, 0.6), "analyse_root_cause": (20, 0.6), "plan_actions": (8, 0.6),
          "approve_capa": (8, 0.7), "implement_capa": (70, 0.5), "verify_effectiveness": (36, 0.5),
          "update_standards": (16, 0.6), "close_capa": (4, 0.6), "final_disposition": (8, 0.6),
          "countersign_engineering": (7, 0.6), "countersign_rnd": (9, 0.6), "handle_delivery": (20, 0.6),
          "reply_customer": (5, 0.6), "confirm_satisfaction": (48, 0.6)}
SLOW_SHARE, SLOW_FACTOR = 0.08, 4.0
WORKER_POLL = timedelta(minutes=1)


@dataclass
class Profile:
    """How one complaint will go: who complains about what, and which turns its handling takes."""

    customer: str
    product: str
    kind: str
    quantity: int
    deadline_days: int | None
    causes: list[str]
    not_ours: bool = False
    returned: bool = False
    rejected: bool = False
    ineffective: bool = False
    refused: bool = False
    unsatisfied: bool = False
    silent: bool = False
    withdrawn: bool = False
    rounds: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Summary:
    """What the generator did."""

    complaints: int
    commands: int
    open_complaints: int
    start: datetime
    end: datetime


def _pick(rng: random.Random, weighted) -> str:
    names, weights = zip(*weighted)
    return rng.choices(names, weights)[0]


def _profile(rng: random.Random) -> Profile:
    kind = "delivery" if rng.random() < 0.2 else "quality"
    cause = _pick(rng, CAUSES)
    second = _pick(rng, CAUSES) if rng.random() < 0.3 else cause
    quality = kind == "quality"
    return Profile(customer=_pick(rng, CUSTOMERS), product=_pick(rng, PRODUCTS), kind=kind,
                   quantity=rng.choice((1, 1, 1, 2, 2, 3)) if rng.random() < 0.9 else rng.randint(4, 30),
                   deadline_days=rng.randint(10, 25) if rng.random() < 0.4 else None, causes=[cause, second],
                   not_ours=quality and rng.random() < 0.15, returned=quality and rng.random() < 0.03,
                   rejected=rng.random() < 0.07, ineffective=rng.random() < 0.15, refused=rng.random() < 0.03,
                   unsatisfied=rng.random() < 0.07, silent=rng.random() < 0.03, withdrawn=rng.random() < 0.02)


def _first(profile: Profile, task: str) -> bool:
    """Count one more round of a task; True on its first round."""
    profile.rounds[task] = profile.rounds.get(task, 0) + 1
    return profile.rounds[task] == 1


def _answer(task: str, p: Profile, rng: random.Random, now: datetime, received: datetime) -> dict[str, Any]:
    """The form a department fills in for a step of this complaint, at this moment."""
    first = _first(p, task)
    today = now.astimezone(OFFICE).date()
    if task == "intake":
        deadline = (received.astimezone(OFFICE).date() + timedelta(days=p.deadline_days)) if p.deadline_days else None
        issue = rng.choice(DELIVERY_ISSUES if p.kind == "delivery" else SYMPTOMS)
        return {"customer": p.customer, "contact": "Purchasing / quality contact", "product_model": p.product,
                "serial_or_lot": f"LOT-{today:%y%m}-{rng.randint(100, 999)}", "quantity_affected": p.quantity,
                "channel": rng.choice(("email", "email", "phone", "visit", "letter")), "complaint_type": p.kind,
                "description": issue, "customer_request": rng.choice(("replace", "repair", "replace,capa_report")),
                **({"customer_deadline": deadline.isoformat()} if deadline else {})}
    cause = p.causes[0] if p.rounds.get("analyse_root_cause", 0) <= 1 else p.causes[1]
    answers = {
        "approve_proceed": lambda: {"proceed": "return_to_sales" if p.returned and first else "proceed"},
        "quality_review": lambda: {"facts_verified": "yes", "nonconformity": "not_reproducible" if p.not_ours
                                   else "confirmed", "responsibility": "not_ours" if p.not_ours else "ours"},
        "explain_to_customer": lambda: {"explanation": "Site logs show operation outside the rated conditions",
                                        "customer_accepts": "yes"},
        "form_team": lambda: {"capa_source": "complaint", "team_leader": "Quality engineer",
                              "team_members": "Quality, engineering and R&D engineers"},
        "describe_problem": lambda: {"description": rng.choice(SYMPTOMS), "customer": p.customer,
                                     "product_model": p.product, "quantity_affected": p.quantity,
                                     "detected_at": "customer"},
        "contain_problem": lambda: {"containment": "Quarantine the lot; 100% check of stock",
                                    "suspect_quantity": rng.randint(20, 400), "contained_on": today.isoformat()},
        "analyse_root_cause": lambda: {"root_cause": rng.choice(ROOT_CAUSES[cause]), "failure_cause": cause},
        "plan_actions": lambda: {"corrective_action": "Correct the cause and add a check to the control plan",
                                 "action_owner": "Process engineer",
                                 "planned_completion": (today + timedelta(days=rng.randint(10, 21))).isoformat()},
        "approve_capa": lambda: {"capa_decision": "rejected" if p.rejected and first else "approved"},
        "implement_capa": lambda: {"actions_taken": "Actions implemented as planned",
                                   "implemented_on": today.isoformat()},
        "verify_effectiveness": lambda: {"effective": "no" if p.ineffective and first else "yes",
                                         "verification_evidence": "Sampling of the next lots"},
        "update_standards": lambda: {"documents_updated": ["work_instruction", "control_plan"],
                                     "change_requested": True},
        "close_capa": lambda: {"closure_summary": "Verified effective; standards updated",
                               "closed_on": today.isoformat()},
        "final_disposition": lambda: {"disposition": "Replace the affected units; CAPA closed"},
        "countersign_engineering": lambda: {"engineering_agrees": "yes"},
        "countersign_rnd": lambda: {"rnd_agrees": "no" if p.refused and first else "yes"},
        "handle_delivery": lambda: {"resolution": "Missing or wrong units sent by express"},
        "reply_customer": lambda: {"reply_summary": "Findings and actions sent to the customer",
                                   "replied_on": today.isoformat()},
        "confirm_satisfaction": lambda: (
            {"satisfied": "no", "satisfaction_score": rng.choice((2, 3)), "customer_representative": "Customer QA"}
            if p.unsatisfied and first else
            {"satisfied": "yes", "satisfaction_score": _pick(rng, ((5, 45), (4, 40), (3, 15))),
             "customer_representative": "Customer QA"}),
    }
    return answers[task]()


def _office_hours(moment: datetime, rng: random.Random) -> datetime:
    """The moment, or, outside office hours, a little after the office next opens."""
    local = moment.astimezone(OFFICE)
    if local.weekday() < 5 and OPENS <= local.time() < CLOSES:
        return moment
    day = local.date() + timedelta(days=0 if local.time() < OPENS else 1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime.combine(day, OPENS, tzinfo=OFFICE) + timedelta(minutes=rng.randint(0, 90))


def _delay(task: str, rng: random.Random) -> timedelta:
    median, sigma = DELAYS[task]
    hours = rng.lognormvariate(0, sigma) * median * (SLOW_FACTOR if rng.random() < SLOW_SHARE else 1)
    return timedelta(hours=hours)


def _arrivals(start: datetime, end: datetime, per_week: float, rng: random.Random) -> list[datetime]:
    """Complaint arrival moments: on weekdays, in office hours, ``per_week`` a week on average."""
    moments, day = [], start.astimezone(OFFICE).date()
    while day <= end.astimezone(OFFICE).date():
        if day.weekday() < 5:
            for _ in range(_poisson(rng, per_week / 5)):
                moment = datetime.combine(day, OPENS, tzinfo=OFFICE) + timedelta(minutes=rng.randint(0, 539))
                if start <= moment < end:
                    moments.append(moment)
        day += timedelta(days=1)
    return sorted(moments)


def _poisson(rng: random.Random, mean: float) -> int:
    count, total = 0, rng.expovariate(1)
    while total < mean:
        count, total = count + 1, total + rng.expovariate(1)
    return count


def _actor(org, department: str, role: str | None, rng: random.Random) -> str:
    dept = org.departments[department]
    if role:
        return dept.head
    return rng.choice([m for m in dept.members if m != dept.head] or [dept.head])


class _Simulation:
    """The event queue: arrivals, steps and withdrawals, each run as one engine command at its moment."""

    def __init__(self, db: Database, rng: random.Random, end: datetime):
        self.db, self.rng, self.end = db, rng, end
        self.org = db.run(runtime.organisation)
        self.queue: list[tuple[datetime, int, str, Any]] = []
        self.profiles: dict[int, tuple[Profile, datetime]] = {}
        self.scheduled: set[int] = set()
        self.commands = 0
        self.tick_at: datetime | None = None
        self._order = 0

    def push(self, moment: datetime, action: str, subject: Any) -> None:
        self._order += 1
        heapq.heappush(self.queue, (moment, self._order, action, subject))

    def run(self) -> None:
        """Run the queue up to the end, one transaction per command (the command, then a look at what it left
        to do), with a worker pass whenever a deadline or escalation falls due, as the worker would run it."""
        while self.queue and self.queue[0][0] < self.end:
            moment, _, action, subject = heapq.heappop(self.queue)
            if action == "tick":
                if moment != self.tick_at:
                    continue  # an earlier due time replaced this pass
                self.tick_at = None
                timers.fire_due(self.db, moment)
                self._plan_tick(self.db.run(store.earliest_due))
                continue
            self.commands += 1
            self._plan_tick(self.db.run(lambda session: self._schedule(
                session, moment, getattr(self, f"_{action}")(session, moment, subject))))

    def _plan_tick(self, due: datetime | None) -> None:
        """Have the worker pass run just after the earliest due time (it polls every WORKER_POLL)."""
        if due is not None and (self.tick_at is None or due + WORKER_POLL < self.tick_at):
            self.tick_at = due + WORKER_POLL
            self.push(self.tick_at, "tick", None)

    def _arrive(self, session, moment: datetime, number: int) -> int:
        profile = _profile(self.rng)
        starter = _actor(self.org, "sales", None, self.rng)
        key = f"CC-{moment.astimezone(OFFICE):%Y}-{number:04d}"
        instance_id = runtime.start(session, PROCESS, starter, moment, business_key=key).id
        self.profiles[instance_id] = (profile, moment)
        if profile.withdrawn:
            self.push(_office_hours(moment + timedelta(days=self.rng.uniform(1, 6)), self.rng), "withdraw", instance_id)
        return instance_id

    def _step(self, session, moment: datetime, task_id: int) -> int | None:
        task = store.get_task(session, task_id)
        if task.status not in runtime.ACTIVE_TASK or task.instance.status != runtime.InstanceStatus.RUNNING.value:
            return None
        profile, received = self.profiles[task.instance_id]
        actor = _actor(self.org, task.department, task.role, self.rng)
        password = demo.signing_password(session, actor, moment) if runtime.rules_of(task).signature else None
        runtime.complete(session, task_id, actor, moment, _answer(task.name, profile, self.rng, moment, received),
                         password=password)
        return task.instance_id

    def _withdraw(self, session, moment: datetime, instance_id: int) -> None:
        instance = store.get_instance(session, instance_id)
        if instance.status == runtime.InstanceStatus.RUNNING.value:
            runtime.cancel(session, instance_id, instance.started_by, moment, "customer withdrew the complaint")

    def _schedule(self, session, moment: datetime, instance_id: int | None) -> datetime | None:
        """Give every new open task of the instance (if the command touched one) its moment to be done;
        return when the worker next has something to do."""
        if instance_id is None:
            return store.earliest_due(session)
        profile, _ = self.profiles[instance_id]
        for task_id, name in store.active_task_names(session, instance_id):
            if task_id in self.scheduled:
                continue
            self.scheduled.add(task_id)
            if name == "confirm_satisfaction" and profile.silent:
                continue  # the customer never answers: the complaint stays open and ages
            self.push(_office_hours(moment + _delay(name, self.rng), self.rng), "step", task_id)
        return store.earliest_due(session)


def generate(db: Database, months: int, now: datetime, org_file: Path, calendar_file: Path, processes_dir: Path,
             seed: int = 1, per_week: float = 4.0) -> Summary:
    """Fill an empty database with ``months`` of complaint handling ending at ``now``, ``per_week`` complaints a week.

    Loads the organisation and the business calendar and deploys the procedures as of the start.
    Refuses a database that already holds instances (the sample would mix with real history).
    """
    start = add_months(now, -months)
    existing = db.run(lambda s: store.list_instances(s, limit=1))
    if existing:
        raise InvalidTransition(f"cannot generate sample history: the database already has instances "
                                f"(newest: {existing[0].id}); use an empty database")
    demo.prepare(db, org_file, calendar_file, processes_dir, start)
    rng = random.Random(seed)
    simulation = _Simulation(db, rng, now)
    for number, moment in enumerate(_arrivals(start, now, per_week, rng), start=1):
        simulation.push(moment, "arrive", number)
    simulation.run()
    running = db.run(lambda s: len(store.list_instances(s, runtime.InstanceStatus.RUNNING.value, limit=100000)))
    return Summary(complaints=len(simulation.profiles), commands=simulation.commands, open_complaints=running,
                   start=start, end=now)
