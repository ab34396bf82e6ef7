"""Evidence packs: JSON, a readable page with the signature manifestations, the pinned files byte for byte."""

import json

import pytest

from conftest import ROOT, T0, at, run_to_approval, tamper
from engine import demo, evidence, runtime
from engine.errors import EngineError


@pytest.fixture
def signed_complaint(complaint_db):
    """The demo's 'ours, effective the first time' complaint: four signed approvals."""
    return complaint_db, demo.run_scenario(complaint_db, demo.SCENARIOS[1], T0)


@pytest.fixture
def signed_request(four_eyes_db):
    """A large request reviewed, then approved with qiang.li's signature."""
    instance_id, approval = run_to_approval(four_eyes_db)
    four_eyes_db.run(lambda s: runtime.complete(s, approval, "qiang.li", at(5), {"approved": "yes"},
                                                password=demo.signing_password(s, "qiang.li", at(5))))
    return four_eyes_db, instance_id


def _export(db, instance_id, out):
    pack = db.run(lambda s: evidence.collect(s, instance_id, "auditor", T0))
    return pack, evidence.write(pack, out)


def test_pack_holds_pinned_files_events_forms_signatures_and_verdicts(signed_complaint, tmp_path):
    db, instance_id = signed_complaint
    pack, _ = _export(db, instance_id, tmp_path / "ev")
    stored = json.loads((tmp_path / "ev" / "evidence.json").read_text(encoding="utf-8"))
    assert stored["verify"] == {"ok": True, "events": len(stored["events"]), "problems": []}
    assert stored["replay"] == {"match": True, "divergence": None}
    assert [(s["task"], s["printed_name"], s["meaning"], s["bound"]) for s in stored["signatures"]] == [
        ("approve_capa", "Tang Jian 唐建", "approved", True), ("final_disposition", "Li Qiang 李强", "approved", True),
        ("countersign_engineering", "Zhang Wei 张伟", "approved", True),
        ("countersign_rnd", "Liang Hua 梁华", "approved", True)]
    assert {f["task"] for f in stored["forms"]} >= {"intake", "approve_capa", "verify_effectiveness"}
    bpmn = (tmp_path / "ev" / "definition" / "bpmn" / "customer_complaint.bpmn").read_bytes()
    assert bpmn == (ROOT / "processes" / "customer_complaint.bpmn").read_bytes()


def test_page_shows_signature_manifestations_and_the_path(signed_complaint, tmp_path):
    db, instance_id = signed_complaint
    _export(db, instance_id, tmp_path / "ev")
    page = (tmp_path / "ev" / "evidence.html").read_text(encoding="utf-8")
    assert "Electronically signed by" in page and "Tang Jian 唐建" in page and "APPROVED" in page.upper()
    assert "Bound to its record ✔" in page and "Replay: MATCH" in page and "<svg" in page
    assert "<script" not in page and " src=" not in page and " href=" not in page  # self-contained


def test_page_reports_a_broken_history(signed_request, tmp_path):
    db, instance_id = signed_request
    tamper(db, "UPDATE events SET actor = 'mallory' WHERE instance_id = :i AND seq = 2", i=instance_id)
    pack, _ = _export(db, instance_id, tmp_path / "ev")
    assert not pack["verify"]["ok"] and "History BROKEN" in (tmp_path / "ev" / "evidence.html").read_text("utf-8")


def test_existing_pack_is_never_overwritten(signed_request, tmp_path):
    db, instance_id = signed_request
    _export(db, instance_id, tmp_path / "ev")
    with pytest.raises(EngineError, match="already holds an evidence pack"):
        _export(db, instance_id, tmp_path / "ev")
