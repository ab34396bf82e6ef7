"""First run: an empty database becomes usable with the sample organisation, procedures and demo passwords."""

from conftest import ORG_FILE, ROOT, T0, fingerprint
from engine import bootstrap, credentials, runtime, store
from engine.demo import DEMO_PASSWORD


def test_first_run_loads_sample_deploys_procedures_and_sets_demo_passwords(db):
    lines = bootstrap.first_run(db, T0)
    shipped = {path.stem for path in (ROOT / "processes").glob("*.bpmn")}
    assert {r.process_key for r in db.run(store.list_definitions)} == shipped
    assert db.run(lambda s: credentials.check_password(s, runtime.organisation(s), "li.zhou", DEMO_PASSWORD))
    assert any(DEMO_PASSWORD in line for line in lines)


def test_first_run_on_a_prepared_database_changes_nothing(db):
    bootstrap.first_run(db, T0)
    before = fingerprint(db)
    bootstrap.first_run(db, T0)
    assert fingerprint(db) == before


def test_real_organisation_gets_no_demo_passwords(db, tmp_path):
    real = tmp_path / "org.yaml"
    real.write_text(ORG_FILE.read_text(encoding="utf-8").replace("Zhou Li", "Zhou Lily"), encoding="utf-8")
    db.run(lambda s: runtime.load_organisation(s, real, "admin", T0))
    bootstrap.first_run(db, T0)
    assert db.run(store.users_with_credentials) == set()
