"""POST /api/auth/login: a username and password for a new named API token; every failure alike; rate limited;
audited without the password; an old hash made again with the current parameters."""
import uuid

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select, update

from app import db
from backend.models import ApiToken, User
from backend.models.types import utcnow
from backend.services import passwords
from tests.helpers.accounts import make_user
from tests.helpers.apps import create_test_app

PASSWORD = "correct horse battery staple"
WRONG = "incorrect horse battery staple"
REFUSED = "invalid username or password"
ADDRESS = {"REMOTE_ADDR": "192.0.2.61"}


def login(client, username="alice", password=PASSWORD, token_name="laptop", environ_base=ADDRESS, **extra):
    body = {"username": username, "password": password, "token_name": token_name, **extra}
    return client.post("/api/auth/login", json=body, token=None, environ_base=environ_base)


def tokens_of(app, username):
    with app.app_context():
        user = User.get_by_username(username)
        count = db.session.scalar(select(func.count()).select_from(ApiToken).where(ApiToken.user_id == user.id))
        db.session.remove()
    return count


def stored_hash(app, username):
    with app.app_context():
        value = User.get_by_username(username).password_hash
        db.session.remove()
    return value


def audit_entries(client, action="auth."):
    response = client.get(f"/api/audit?action={action}")
    assert response.status_code == 200
    return response.get_json()["entries"]


# -- success ---------------------------------------------------------------------------------------------


def test_a_right_password_gives_a_named_token_that_works(app, client):
    user_id, _ = make_user(app, "alice", password=PASSWORD)

    response = login(client, expires_in_days=30)

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert set(body) == {"success", "token", "token_info", "user"}
    assert body["success"] is True
    assert body["token"].startswith(body["token_info"]["prefix"])
    assert body["token_info"]["name"] == "laptop" and body["token_info"]["expires_at"]
    assert body["user"]["id"] == str(user_id) and body["user"]["username"] == "alice"
    assert "password" not in response.get_data(as_text=True)
    me = client.get("/api/me", token=body["token"])
    assert me.status_code == 200 and me.get_json()["user"]["username"] == "alice"
    listed = client.get("/api/tokens", token=body["token"]).get_json()["tokens"]
    assert {t["name"] for t in listed} == {"tests", "laptop"}


def test_login_needs_no_token_and_ignores_a_bad_one(app, client):
    make_user(app, "alice", password=PASSWORD)

    response = client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD, "token_name": "x"},
                           headers={"Authorization": "Bearer paas_" + "x" * 43})

    assert response.status_code == 201


def test_the_body_has_the_same_shape_as_post_api_tokens_plus_the_user(app, client):
    make_user(app, "alice", password=PASSWORD)
    made = client.post("/api/tokens", json={"name": "ci"}).get_json()

    logged_in = login(client).get_json()

    assert set(logged_in) - {"user"} == set(made)
    assert set(logged_in["token_info"]) == set(made["token_info"])


# -- every failure alike -----------------------------------------------------------------------------------


def make_failure(app, case):
    """A login that must fail, as (username, password)."""
    make_user(app, "alice", password=PASSWORD)
    if case == "wrong password":
        return "alice", WRONG
    if case == "unknown user":
        return "nobody-here", PASSWORD
    if case == "disabled user":
        make_user(app, "dora", password=PASSWORD)
        with app.app_context():
            db.session.execute(update(User).where(User.username == "dora").values(disabled_at=utcnow()))
            db.session.commit()
            db.session.remove()
        return "dora", PASSWORD
    if case == "user without a password":
        make_user(app, "nopass")
        return "nopass", PASSWORD
    if case == "name that cannot exist":
        return "Not A Username!", PASSWORD
    if case == "name in capitals":  # MariaDB's collation would find alice
        return "ALICE", PASSWORD
    if case == "name with a trailing space":  # so would a PAD SPACE collation
        return "alice ", PASSWORD
    raise AssertionError(case)


FAILURES = ["wrong password", "unknown user", "disabled user", "user without a password", "name that cannot exist",
            "name in capitals", "name with a trailing space"]


@pytest.mark.parametrize("case", FAILURES)
def test_every_failure_answers_401_with_the_same_words(app, client, case):
    username, password = make_failure(app, case)

    response = login(client, username=username, password=password)

    assert response.status_code == 401
    body = response.get_json()
    assert body == {"success": False, "error": {"code": "unauthorized", "message": REFUSED, "fields": {},
                                                "request_id": body["error"]["request_id"]}}
    assert password not in response.get_data(as_text=True)
    assert tokens_of(app, "alice") == 1  # the suite's helper made one; the login none


class CountingHasher(PasswordHasher):
    """argon2-cffi's hasher, counting the verifications (the hashes are real)."""

    __slots__ = ("verified",)

    def __init__(self):
        super().__init__()
        self.verified = 0

    def verify(self, hash, password):  # noqa: A002 - argon2-cffi's name
        self.verified += 1
        return super().verify(hash, password)


@pytest.mark.parametrize("case", FAILURES)
def test_every_failure_costs_one_argon2_verification_as_a_success_does(app, client, case, monkeypatch):
    # Timing must not tell an unknown or password-less user from a wrong password: each checks one hash made
    # with the same parameters (the dummy one when there is none). Counted here; no test measures time.
    username, password = make_failure(app, case)
    counting = CountingHasher()
    monkeypatch.setattr(passwords, "HASHER", counting)
    passwords._dummy_hash.cache_clear()
    try:
        assert login(client, username=username, password=password).status_code == 401
        assert counting.verified == 1
        assert login(client).status_code == 201
        assert counting.verified == 2
    finally:
        passwords._dummy_hash.cache_clear()


# -- the body ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("body,field", [
    ({"username": "alice", "password": PASSWORD, "token_name": "x", "remember": True}, "remember"),
    ({"username": "alice", "password": PASSWORD}, "token_name"),
    ({"username": "alice", "password": PASSWORD, "token_name": "no/slashes"}, "token_name"),
    ({"username": "alice", "password": PASSWORD, "token_name": "x" * 65}, "token_name"),
    ({"username": "alice", "password": PASSWORD, "token_name": "x", "expires_in_days": 0}, "expires_in_days"),
    ({"username": "alice", "token_name": "x"}, "password"),
    ({"username": "alice", "password": "", "token_name": "x"}, "password"),
    ({"username": "alice", "password": "p" * 1025, "token_name": "x"}, "password"),
    ({"username": "alice", "password": 12345678901234, "token_name": "x"}, "password"),
    ({"username": "a" * 65, "password": PASSWORD, "token_name": "x"}, "username"),
])
def test_a_body_that_breaks_the_schema_is_422_naming_the_field_and_never_the_password(app, client, body, field):
    make_user(app, "alice", password=PASSWORD)

    response = client.post("/api/auth/login", json=body, token=None)

    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["error"]["fields"]
    assert PASSWORD not in response.get_data(as_text=True)
    assert tokens_of(app, "alice") == 1


# -- rate limit --------------------------------------------------------------------------------------------


@pytest.fixture
def limited(database_url, unreachable_proxmox):
    """The app with rate limits on (the login's at its default, 5 per minute), counted apart from other tests."""
    app = create_test_app(SQLALCHEMY_DATABASE_URI=database_url, PROXMOX_SETTINGS=unreachable_proxmox,
                          RATELIMIT_ENABLED=True, RATELIMIT_KEY_PREFIX=f"login{uuid.uuid4().hex[:8]}")
    yield app
    with app.app_context():
        db.engine.dispose()


def test_the_sixth_wrong_password_in_a_minute_answers_429_with_retry_after(limited):
    assert limited.config["RATELIMIT_LOGIN"] == "5 per minute"
    make_user(limited, "alice", password=PASSWORD)
    client = limited.test_client()

    codes = [login(client, password=WRONG).status_code for _ in range(5)]
    slowed = login(client, password=WRONG)

    assert codes == [401] * 5
    assert slowed.status_code == 429
    assert 0 < int(slowed.headers["Retry-After"]) <= 60
    assert slowed.get_json()["error"]["code"] == "too_many_requests"
    # The right password waits too: guessing on would otherwise go on at full speed.
    assert login(client).status_code == 429


def test_logins_are_counted_per_address_and_per_username(limited):
    make_user(limited, "alice", password=PASSWORD)
    make_user(limited, "bob", password=PASSWORD)
    client = limited.test_client()
    for _ in range(5):
        assert login(client, password=WRONG).status_code == 401

    # Another machine guessing alice's password is slowed down as well...
    elsewhere = {"REMOTE_ADDR": "198.51.100.7"}
    assert login(client, password=PASSWORD, environ_base=elsewhere).status_code == 429
    # ...while bob logs in from there, and the first address is refused whatever the name.
    assert login(client, username="bob", environ_base=elsewhere).status_code == 201
    assert login(client, username="bob").status_code == 429


def test_a_login_body_without_a_username_is_refused_and_counted_never_a_500(limited):
    client = limited.test_client()
    bodies = [b"not json", b'["a list"]', b'{"username": 5}', b'{"username": "a", "username": "b"}']

    codes = [client.post("/api/auth/login", data=body, content_type="application/json", token=None).status_code
             for body in bodies]
    # The body guard refuses what is not a JSON object before the limit is counted; the schema's refusals count.
    more = [client.post("/api/auth/login", json={}, token=None).status_code for _ in range(5)]

    assert codes == [400, 422, 422, 400]
    assert more == [422, 422, 422, 422, 429]


# -- audit -------------------------------------------------------------------------------------------------


def test_attempts_are_audited_with_username_and_address_never_the_password(app, client):
    user_id, _ = make_user(app, "alice", password=PASSWORD)
    assert login(client, password=WRONG).status_code == 401
    assert login(client, username="ghost", password=WRONG).status_code == 401
    made = login(client).get_json()

    entries = audit_entries(client)

    assert [e["action"] for e in entries] == ["auth.login", "auth.login_failed", "auth.login_failed"]
    success, ghost, wrong = entries
    assert success["user_id"] == str(user_id) and success["username"] == "alice"
    assert success["target"] == f"token {made['token_info']['prefix']}"
    assert success["details"]["name"] == "laptop" and success["details"]["username"] == "alice"
    assert wrong["user_id"] is None and wrong["username"] is None
    assert wrong["details"] == {"username": "alice"} and wrong["target"] == "user alice"
    # A name no account has is not recorded: it may be a password typed into the wrong box.
    assert ghost["details"] == {"username": None} and ghost["target"] == "an unknown username"
    assert {e["ip_address"] for e in entries} == {ADDRESS["REMOTE_ADDR"]}
    assert all(e["request_id"] for e in entries)
    text = client.get("/api/audit").get_data(as_text=True)
    assert PASSWORD not in text and WRONG not in text and made["token"] not in text


# -- rehash ------------------------------------------------------------------------------------------------


def test_a_hash_made_with_older_parameters_is_made_again_at_login(app, client):
    make_user(app, "alice")
    old = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
    with app.app_context():
        db.session.execute(update(User).where(User.username == "alice").values(password_hash=old))
        db.session.commit()
        db.session.remove()

    assert login(client, password=WRONG).status_code == 401
    assert stored_hash(app, "alice") == old  # a failure changes nothing

    assert login(client).status_code == 201
    new = stored_hash(app, "alice")
    assert new != old and new.startswith("$argon2id$")
    assert not passwords.HASHER.check_needs_rehash(new)
    assert login(client, token_name="again").status_code == 201
    assert stored_hash(app, "alice") == new  # current parameters: left alone


def test_a_stored_hash_that_is_not_argon2_refuses_the_login_like_any_failure(app, client):
    make_user(app, "alice")
    with app.app_context():
        db.session.execute(update(User).where(User.username == "alice").values(password_hash="not-a-hash"))
        db.session.commit()
        db.session.remove()

    response = login(client)

    assert response.status_code == 401 and response.get_json()["error"]["message"] == REFUSED


# -- the document ------------------------------------------------------------------------------------------


def test_the_login_is_documented_as_public_with_its_answers(client):
    document = client.get("/api/openapi.json").get_json()
    operation = document["paths"]["/api/auth/login"]["post"]

    assert operation["security"] == []
    assert {"201", "401", "422", "429"} <= set(operation["responses"])
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"username", "password", "token_name"}
    password = schema["properties"]["password"]
    assert password["writeOnly"] is True and password["format"] == "password"
    assert password["maxLength"] == passwords.MAX_LENGTH


# -- changing one's own password ---------------------------------------------------------------------------

NEW = "a brand new passphrase, long"


def change(client, token, **body):
    return client.put("/api/me/password", json=body, token=token, environ_base=ADDRESS)


def test_people_change_their_own_password_knowing_the_current_one(app, client):
    _, token = make_user(app, "alice", password=PASSWORD)

    wrong = change(client, token, current_password=WRONG, new_password=NEW)
    assert wrong.status_code == 422 and wrong.get_json()["error"]["fields"] == {"current_password": "does not match"}
    missing = change(client, token, new_password=NEW)
    assert missing.status_code == 422 and "current_password" in missing.get_json()["error"]["fields"]
    same = change(client, token, current_password=PASSWORD, new_password=PASSWORD)
    assert same.status_code == 422 and same.get_json()["error"]["fields"] == {"new_password": "unchanged"}
    weak = change(client, token, current_password=PASSWORD, new_password="short")
    assert weak.status_code == 422 and "password" in weak.get_json()["error"]["fields"]
    assert change(client, token, current_password=PASSWORD, new_password=NEW, extra=1).status_code == 422

    assert change(client, token, current_password=PASSWORD, new_password=NEW).status_code == 204
    assert login(client, password=PASSWORD).status_code == 401
    assert login(client, password=NEW, token_name="phone").status_code == 201
    assert client.get("/api/me", token=token).status_code == 200  # the tokens made before stay valid

    [entry] = audit_entries(client, action="user.password_changed")
    assert entry["target"] == "user alice"
    text = client.get("/api/audit").get_data(as_text=True)
    assert PASSWORD not in text and NEW not in text


def test_a_first_password_needs_only_the_token_and_attempts_are_limited(limited):
    _, token = make_user(limited, "bob")
    client = limited.test_client()
    assert change(client, token, new_password=NEW).status_code == 204
    assert login(client, username="bob", password=NEW).status_code == 201

    codes = [change(client, token, current_password=WRONG, new_password=NEW + "!").status_code for _ in range(5)]
    # The first change and the login counted too: five tries at bob's password a minute, whichever the door.
    assert codes == [422, 422, 422, 429, 429]
    assert client.put("/api/me/password", json={"new_password": NEW}, token=None).status_code == 401
