"""backend/services/passwords.py: the policy and why it refuses, argon2id hashes, verify_password's answers."""
import pytest
from sqlalchemy import update

from backend.errors import ValidationFailed
from backend.extensions import db
from backend.models import User
from backend.models.types import utcnow
from backend.services import accounts, passwords


@pytest.fixture
def alice(app):
    username = accounts.create_user("alice", "member").username
    db.session.remove()
    return username


def set_password(username, password):
    passwords.set_password(User.get_by_username(username), password)
    db.session.remove()


@pytest.mark.parametrize("password,reason", [
    ("", "empty or only whitespace"),
    (" \t\n" * 10, "empty or only whitespace"),
    ("short-pass1", "has 11 characters and needs at least 12"),
    ("x" * 1025, "more than 1024 characters"),
    ("valid length \ud800", "unpaired surrogate"),
    (None, "must be text"),
])
def test_the_policy_says_why_it_refuses_and_never_repeats_the_password(alice, password, reason):
    with pytest.raises(ValidationFailed) as refused:
        set_password(alice, password)

    assert reason in refused.value.message and reason in refused.value.fields["password"]
    if password and password.strip():
        assert password not in refused.value.message and password not in str(refused.value.fields)
    assert User.get_by_username(alice).password_hash is None


@pytest.mark.parametrize("password", ["twelve chars", "x" * 1024, "  leading and trailing spaces kept  ",
                                      "ünïcödé pässwörd ☃"])
def test_passwords_within_the_policy_are_stored_as_argon2id_hashes(alice, password):
    set_password(alice, password)

    stored = User.get_by_username(alice).password_hash
    assert stored.startswith("$argon2id$") and password not in stored
    assert passwords.verify_password(alice, password).username == alice
    assert passwords.verify_password(alice, password.strip() + "!") is None


def test_each_hash_is_salted(alice, app):
    accounts.create_user("bob", "member")
    set_password(alice, "the same password")
    set_password("bob", "the same password")

    assert User.get_by_username(alice).password_hash != User.get_by_username("bob").password_hash


def test_a_new_password_replaces_the_old_one(alice):
    set_password(alice, "the first password")
    set_password(alice, "the second password")

    assert passwords.verify_password(alice, "the first password") is None
    assert passwords.verify_password(alice, "the second password") is not None


def test_the_same_password_typed_in_another_unicode_form_matches(alice):
    set_password(alice, "caf\u00e9 au lait, s'il vous pla\u00eet")  # composed é and î

    assert passwords.verify_password(alice, "cafe\u0301 au lait, s'il vous plai\u0302t") is not None  # decomposed


@pytest.mark.parametrize("username,password", [
    ("alice", "the wrong password"), ("nobody", "a right password"), ("", "a right password"), (None, "x" * 12),
    ("alice", ""), ("alice", None), ("alice", "a right password" * 100), ("alice", "a right \ud800 password"),
])
def test_verify_password_answers_none_to_anything_but_the_right_pair(alice, username, password):
    set_password(alice, "a right password")

    assert passwords.verify_password(username, password) is None
    assert passwords.verify_password(alice, "a right password").username == alice


def test_a_disabled_user_is_refused_with_the_right_password(alice):
    set_password(alice, "a right password")
    db.session.execute(update(User).where(User.username == alice).values(disabled_at=utcnow()))
    db.session.commit()

    assert passwords.verify_password(alice, "a right password") is None
