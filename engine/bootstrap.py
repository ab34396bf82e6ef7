"""First run: make an empty database ready to use with the shipped sample organisation and procedures.

``qproc serve`` calls :func:`first_run` so a newcomer's first command gives a working inbox: on a
database with no organisation it loads the shipped ``org.yaml`` and ``calendar.yaml`` and deploys
the shipped procedures (the same :func:`engine.demo.prepare` that ``qproc demo`` uses), and while
the organisation in force is that sample one, every sample user without a password is given
``engine.demo.DEMO_PASSWORD`` as a first password (recorded as given by the system). A database
holding a real organisation is never given demo passwords.
"""

import sys
from datetime import datetime
from pathlib import Path

from . import credentials, demo, runtime, store
from .demo import DEMO_PASSWORD
from .directory import Organisation
from .errors import NotFound
from .store import Database

SHIPPED_ROOTS = (Path(__file__).resolve().parent.parent, Path(sys.prefix) / "share" / "qproc")


def shipped(name: str) -> Path:
    """The path of a file or folder shipped with qproc (``processes``, ``forms``, ``org.yaml``)."""
    for root in SHIPPED_ROOTS:
        if (root / name).exists():
            return root / name
    raise NotFound(f"cannot find the shipped '{name}' (looked in {', '.join(map(str, SHIPPED_ROOTS))})")


def first_run(db: Database, now: datetime) -> list[str]:
    """Load and deploy the samples if no organisation is loaded, give sample users the demo password;
    returns one line per thing done or found, for the operator to read.

    Safe to call on every start: what is already there is left as it is. A new SQLite file gets its
    schema from the first command; any other database must be at the schema this qproc needs
    (SchemaVersionError says to run ``qproc db upgrade``).
    """
    lines = []
    if db.run(store.current_organisation) is None:
        lines.append(demo.prepare(db, shipped("org.yaml"), shipped("calendar.yaml"), shipped("processes"), now))
    sample = Organisation.from_yaml(shipped("org.yaml").read_text(encoding="utf-8"))

    def seed(session) -> list[str] | None:
        org = runtime.organisation(session)
        if org.to_dict() != sample.to_dict():
            return None
        have = store.users_with_credentials(session)
        missing = [user for user in sample.users if user not in have]
        for user in missing:
            credentials.give_first_password(session, org, user, DEMO_PASSWORD, runtime.SYSTEM_ACTOR, now)
        return missing

    seeded = db.run(seed)
    if seeded:
        lines.append(f"Gave {len(seeded)} sample users the demo password.")
    if seeded is not None:
        lines.append(f"Sample organisation: sign in as e.g. li.zhou (sales), mei.wang (quality) or jian.tang "
                     f"(management representative); sample users start with the demo password '{DEMO_PASSWORD}'.")
    deployed = sorted({row.process_key for row in db.run(store.list_definitions)})
    lines.append(f"Deployed processes: {', '.join(deployed) or 'none (run qproc deploy)'}.")
    return lines
