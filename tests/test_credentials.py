"""Passwords: one per user, stored only as Argon2id hashes, set by their owner, every setting recorded."""

import pytest

from conftest import T0, fingerprint
from engine import audit, credentials, runtime, store
from engine.errors import Forbidden, FormError, InvalidTransition

PASSWORD = "four-eyes-secret"


def _set(db, user, new=PASSWORD, actor=None, current=None):
    db.run(lambda s: credentials.set_password(s, runtime.organisation(s), user, new, actor or user, T0, current))


def _check(db, user, password=PASSWORD):
    return db.run(lambda s: credentials.check_password(s, runtime.organisation(s), user, password))


def _give(db, user, password=PASSWORD):
    db.run(lambda s: credentials.give_first_password(s, runtime.organisation(s), user, password, "qproc", T0))


def test_password_is_stored_only_as_an_argon2_hash_and_its_setting_recorded(org_db):
    _set(org_db, "qiang.li")
    stored = org_db.run(lambda s: store.get_credential(s, "qiang.li").password_hash)
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    event = org_db.run(lambda s: audit.history(s, None))[-1]
    assert (event.kind, event.actor, event.data) == ("password_set", "qiang.li", {"user": "qiang.li", "changed": False})


def test_nobody_sets_another_users_password(org_db):
    with pytest.raises(Forbidden, match="'mei.wang' cannot set the password of 'qiang.li'"):
        _set(org_db, "qiang.li", actor="mei.wang")


def test_changing_a_password_needs_the_current_one(org_db):
    _set(org_db, "qiang.li")
    with pytest.raises(Forbidden, match="give the current one"):
        _set(org_db, "qiang.li", new="another-secret", current="wrong-guess")
    _set(org_db, "qiang.li", new="another-secret", current=PASSWORD)


def test_short_password_is_refused(org_db):
    with pytest.raises(FormError, match="at least 8 characters"):
        _set(org_db, "qiang.li", new="short")


def test_the_password_that_was_set_is_accepted(org_db):
    _set(org_db, "li.zhou")
    assert _check(org_db, "li.zhou")


def test_a_wrong_password_is_refused(org_db):
    _set(org_db, "li.zhou")
    assert not _check(org_db, "li.zhou", PASSWORD + "!")


def test_a_user_without_password_is_refused(org_db):
    assert not _check(org_db, "mei.wang")


def test_an_unknown_user_is_refused(org_db):
    assert not _check(org_db, "nobody")


def test_first_password_given_by_the_system_is_recorded_as_given_by_it(org_db):
    _give(org_db, "li.zhou")
    event = org_db.run(lambda s: audit.history(s, None))[-1]
    assert _check(org_db, "li.zhou") and (event.actor, event.data) == ("qproc", {"user": "li.zhou", "changed": False})


def test_a_password_of_ones_own_is_never_overwritten_by_a_first_password(org_db):
    _set(org_db, "li.zhou")
    before = fingerprint(org_db)
    with pytest.raises(InvalidTransition, match="'li.zhou' already has a password: only they may change it"):
        _give(org_db, "li.zhou", "another-secret")
    assert fingerprint(org_db) == before
