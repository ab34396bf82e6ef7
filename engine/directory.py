"""The organisation: departments, their heads and members, and who may act on which task.

An :class:`Organisation` is read from ``org.yaml`` (see the file shipped at the repository root)
and answers two questions for the rest of the engine: which department a BPMN lane names, and
whether a user may act on a task routed to a department (optionally as its head).
"""

import re
from dataclasses import dataclass

from . import yamlfile
from .errors import DefinitionError, Forbidden, NotFound

HEAD_ROLE = "head"
_LANE_SPLIT = re.compile(r"[\s/|,;()（）、]+")


@dataclass(frozen=True)
class User:
    """A person who can act in qproc; ``name`` is the printed name used on records."""

    id: str
    name: str
    name_zh: str = ""

    @property
    def label(self) -> str:
        """The printed name with the Chinese name beside it when there is one."""
        return f"{self.name} {self.name_zh}".strip()


@dataclass(frozen=True)
class Department:
    """A department: its key, English and Chinese names, head and members (head included)."""

    key: str
    en: str
    zh: tuple[str, ...]
    head: str
    members: tuple[str, ...]

    @property
    def label(self) -> str:
        """English name with the first Chinese name, e.g. ``Quality 质量部``."""
        return f"{self.en} {self.zh[0]}" if self.zh else self.en

    def aliases(self) -> set[str]:
        """Every normalised name a lane may use for this department."""
        return {_norm(n) for n in (self.key, self.en, *self.zh)}


def _norm(name: str) -> str:
    return " ".join(name.split()).casefold()


class Organisation:
    """Departments and users, validated so every head and member is a known user."""

    def __init__(self, departments: list[Department], users: list[User]):
        self.departments = {d.key: d for d in departments}
        self.users = {u.id: u for u in users}
        self._alias_to_key: dict[str, str] = {}
        for dept in departments:
            for alias in dept.aliases():
                other = self._alias_to_key.setdefault(alias, dept.key)
                if other != dept.key:
                    raise DefinitionError(f"name '{alias}' is used by departments '{other}' and '{dept.key}'")

    @classmethod
    def from_dict(cls, raw: object, file_name: str = "organisation") -> "Organisation":
        """Build and validate an organisation from parsed YAML; raises DefinitionError naming the problem."""
        if not isinstance(raw, dict):
            raise DefinitionError("expected a mapping with 'departments' and 'users'", file_name)
        try:
            users = [User(id=str(u["id"]), name=str(u["name"]), name_zh=str(u.get("name_zh", "")))
                     for u in raw.get("users") or []]
            departments = [
                Department(key=str(d["key"]), en=str(d["en"]), zh=tuple(str(z) for z in d.get("zh") or ()),
                           head=str(d["head"]), members=tuple(str(m) for m in d.get("members") or ()))
                for d in raw.get("departments") or []
            ]
        except (KeyError, TypeError, AttributeError) as err:
            raise DefinitionError(f"a department or user entry lacks a required key: {err}", file_name) from err
        if not departments:
            raise DefinitionError("no departments defined", file_name)
        known = {u.id for u in users}
        if len(known) != len(users):
            raise DefinitionError("a user id is listed twice", file_name)
        for dept in departments:
            for person in (dept.head, *dept.members):
                if person not in known:
                    raise DefinitionError(f"department '{dept.key}' names unknown user '{person}'", file_name)
            if dept.head not in dept.members:
                raise DefinitionError(f"head '{dept.head}' of department '{dept.key}' is not among its members",
                                      file_name)
        try:
            return cls(departments, users)
        except DefinitionError as err:
            raise DefinitionError(str(err), file_name) from err

    @classmethod
    def from_yaml(cls, text: str, file_name: str = "org.yaml") -> "Organisation":
        """Parse ``org.yaml`` text; raises DefinitionError with the file (and line for YAML syntax errors)."""
        raw = yamlfile.parse(text, file_name)
        return cls.from_dict(raw, file_name)

    def to_dict(self) -> dict:
        """The organisation as plain data, the inverse of :meth:`from_dict`."""
        return {
            "departments": [{"key": d.key, "en": d.en, "zh": list(d.zh), "head": d.head, "members": list(d.members)}
                            for d in self.departments.values()],
            "users": [{"id": u.id, "name": u.name, "name_zh": u.name_zh} for u in self.users.values()],
        }

    def department_for_lane(self, lane: str) -> str | None:
        """The key of the department a lane name denotes, or None when it names none.

        The whole name is tried first, then each word of it, so ``Quality 质量部``, ``quality``
        and ``品管部`` all resolve to ``quality``. A name whose words point at two departments
        resolves to none.
        """
        whole = self._alias_to_key.get(_norm(lane))
        if whole:
            return whole
        found = {self._alias_to_key[w] for w in (_norm(p) for p in _LANE_SPLIT.split(lane)) if w in self._alias_to_key}
        return found.pop() if len(found) == 1 else None

    def user(self, user_id: str) -> User:
        """The user with this id; raises NotFound naming it."""
        try:
            return self.users[user_id]
        except KeyError:
            raise NotFound(f"no such user: '{user_id}'") from None

    def department(self, key: str) -> Department:
        """The department with this key; raises NotFound naming it."""
        try:
            return self.departments[key]
        except KeyError:
            raise NotFound(f"no such department: '{key}' (known: {', '.join(self.departments)})") from None

    def departments_of(self, user_id: str) -> list[str]:
        """Keys of the departments the user belongs to, in file order."""
        return [d.key for d in self.departments.values() if user_id in d.members]

    def is_head(self, user_id: str) -> bool:
        """Whether the user heads any department."""
        return any(d.head == user_id for d in self.departments.values())

    def check_may_act(self, user_id: str, department: str, role: str | None, what: str) -> None:
        """Raise Forbidden unless the user belongs to the department (and is its head when role is 'head').

        ``what`` names the task for the message, e.g. ``task 7 'Review complaint'``.
        """
        self.user(user_id)
        dept = self.department(department)
        if user_id not in dept.members:
            raise Forbidden(f"{what} belongs to department '{dept.key}' ({dept.label}); "
                            f"'{user_id}' is not a member of it")
        if role == HEAD_ROLE and dept.head != user_id:
            raise Forbidden(f"{what} needs the head of '{dept.key}' ({dept.head}); '{user_id}' is not the head")
