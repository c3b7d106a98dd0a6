"""People's passwords: the policy, their argon2id hashes (argon2-cffi), and checking a login.

A password is exchanged for an API token (POST /api/auth/login) or for a dashboard session (its login form);
every API call authenticates with a token, every page with a session. The hash is argon2id with argon2-cffi's
defaults (RFC 9106's low-memory parameters); a login whose stored hash was made with other parameters stores a
new one (check_needs_rehash), so raising the parameters later upgrades each user at their next login.

A failed login takes as long whatever the reason: an unknown user, or one without a password, is checked
against a dummy hash made with the same parameters, and a disabled user's password is checked before the
refusal. The caller answers every failure alike.
"""
import functools
import logging
import secrets
import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import OperationalError

from backend.errors import ValidationFailed
from backend.extensions import db
from backend.models import User, WebSession
from backend.services.accounts import USERNAME_RE
from backend.services.transactions import commit

log = logging.getLogger(__name__)

MIN_LENGTH = 12
# Each login hashes what it is sent: a bound keeps a huge "password" from costing more than a real one.
MAX_LENGTH = 1024
HASHER = PasswordHasher()


def _normalised(password):
    """The text that is hashed: NFKC, so that the same password typed on another keyboard or system (composed or
    decomposed accents, full-width forms) is the same password (NIST SP 800-63B, 5.1.1.2)."""
    return unicodedata.normalize("NFKC", password)


def check_policy(password):
    """ValidationFailed saying why, unless password is acceptable. The message never repeats the password."""
    def refuse(reason):
        raise ValidationFailed(f"the password is not acceptable: {reason}", fields={"password": reason})

    if not isinstance(password, str):
        refuse("it must be text")
    if not _encodable(password):
        refuse("it must be valid text (it holds an unpaired surrogate, which UTF-8 cannot encode)")
    if not password.strip():
        refuse("it is empty or only whitespace")
    length = len(_normalised(password))
    if length < MIN_LENGTH:
        refuse(f"it has {length} characters and needs at least {MIN_LENGTH}: length is what makes a password "
               "hard to guess (a few unrelated words are easy to remember)")
    if length > MAX_LENGTH:
        refuse(f"it has more than {MAX_LENGTH} characters: every login hashes the whole password, and a longer "
               "one guards nothing more")


def hash_password(password):
    """The stored form of an acceptable password (argon2id, salted; the parameters are in the text)."""
    check_policy(password)
    return HASHER.hash(_normalised(password))


def set_password(user, password, keep_session=None):
    """Give user this password (replacing any other), after the policy's check; committed. Their dashboard
    sessions end (but keep_session, the id of the one that made the change); API tokens stay."""
    user.password_hash = hash_password(password)
    WebSession.revoke_for_user(user.id, keep=keep_session)
    commit()
    return user


def change_password(user, current, new, keep_session=None):
    """The user's own change: the current password must match when they have one (a token alone, which is how
    they reach this, may set a first one). ValidationFailed naming the field otherwise; committed."""
    stored = user.password_hash
    usable = isinstance(current, str) and 0 < len(current) <= MAX_LENGTH and _encodable(current)
    if stored is not None and not (usable and _matches(stored, _normalised(current))):
        raise ValidationFailed("the current password does not match", fields={"current_password": "does not match"})
    check_policy(new)
    if stored is not None and _matches(stored, _normalised(new)):
        raise ValidationFailed("the new password is the current one", fields={"new_password": "unchanged"})
    return set_password(user, new, keep_session)


@functools.cache
def _dummy_hash():
    """A hash no password matches, made with the hasher's parameters: what a login without a stored hash is
    checked against, so that it takes as long as one with a hash."""
    return HASHER.hash(secrets.token_urlsafe(32))


def _matches(stored, password):
    try:
        return HASHER.verify(stored, password)
    except VerificationError:  # VerifyMismatchError among them
        return False
    except InvalidHashError:
        log.warning("a stored password hash is not an argon2 hash; that user cannot log in with a password")
        return False


def verify_password(username, password):
    """The active user with this username and password, or None whatever the reason (unknown user, no password,
    wrong password, disabled), each failure after one argon2 verification, as a success takes."""
    # Only a name as it is stored is looked up: MariaDB's collation would also find alice as "ALICE" or "alice ",
    # a spelling the per-username rate limit counts apart.
    exact = isinstance(username, str) and USERNAME_RE.fullmatch(username) is not None
    user = User.get_by_username(username) if exact else None
    if user is not None and user.username != username:
        user = None
    stored = user.password_hash if user is not None else None
    usable = isinstance(password, str) and 0 < len(password) <= MAX_LENGTH and _encodable(password)
    candidate = _normalised(password) if usable else ""
    matched = _matches(stored or _dummy_hash(), candidate) and stored is not None and usable
    if not matched or not user.is_active:
        return None
    if HASHER.check_needs_rehash(stored):
        _rehash(user, candidate)
    return user


def is_account_name(username):
    """Whether username names an account exactly as stored. A failed login records the name it was tried with
    only then: what someone typed into the username box may be their password."""
    if not isinstance(username, str) or USERNAME_RE.fullmatch(username) is None:
        return False
    user = User.get_by_username(username)
    return user is not None and user.username == username


def _encodable(text):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _rehash(user, password):
    """Store the password's hash with the current parameters; best effort (the login succeeds either way)."""
    username = user.username
    try:
        user.password_hash = HASHER.hash(password)
        commit()
    except OperationalError:
        db.session.rollback()
        log.warning("could not store the new password hash of %s", username)
