"""/api/deployments/<id>/domains: who may claim which name, what is refused and how; the router itself is down
here (its admin port refuses), so every change is recorded and waits for the next sync."""
import uuid

import pytest

from app import db
from backend.models import Deployment, DeploymentStatus, Domain
from backend.services import routing
from tests.helpers.accounts import admin_token, make_user
from tests.helpers.api import create_deployment, error_of
from tests.helpers.apps import create_test_app

DOMAIN = "apps.example.com"


@pytest.fixture
def routed_app(database_url, unreachable_proxmox):
    app = create_test_app(SQLALCHEMY_DATABASE_URI=database_url, PROXMOX_SETTINGS=unreachable_proxmox,
                          ROUTER="caddy", CADDY_ADMIN_URL="http://127.0.0.1:9", APPS_DOMAIN=DOMAIN,
                          ROUTER_TLS="internal")
    admin_token(app)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def rclient(routed_app):
    return routed_app.test_client()


def add(client, ident, hostname, **kwargs):
    return client.post(f"/api/deployments/{ident}/domains", json={"hostname": hostname}, **kwargs)


def test_a_custom_domain_is_claimed_listed_and_given_up(rclient):
    ident = create_deployment(rclient, name="shop")["id"]
    answer = add(rclient, ident, " Shop.Example.ORG. ")
    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    assert body["domain"]["hostname"] == "shop.example.org" and body["routed"] is False  # the router is down
    listed = rclient.get(f"/api/deployments/{ident}/domains").get_json()
    assert listed["default"] == f"shop.{DOMAIN}" and listed["url"] is None  # nothing serves yet
    assert [d["hostname"] for d in listed["domains"]] == ["shop.example.org"]
    assert rclient.delete(f"/api/deployments/{ident}/domains/SHOP.example.org").status_code == 204
    assert rclient.get(f"/api/deployments/{ident}/domains").get_json()["domains"] == []
    missing = rclient.delete(f"/api/deployments/{ident}/domains/shop.example.org")
    assert missing.status_code == 404 and error_of(missing)["fields"] == {"hostname": "unknown"}


@pytest.mark.parametrize("hostname", ["localhost", "-bad.example.com", "a..b.com", "under_score.example.com",
                                      "x" * 64 + ".example.com", "10.0.0.1", "exa mple.com", "ünï.example.com",
                                      "*.example.com", ""])
def test_a_hostname_that_is_not_a_domain_name_is_refused(rclient, hostname):
    ident = create_deployment(rclient, name="strict")["id"]
    answer = add(rclient, ident, hostname)
    assert answer.status_code == 422 and "hostname" in error_of(answer)["fields"], answer.get_json()


def test_unknown_fields_are_refused(rclient):
    ident = create_deployment(rclient, name="fields")["id"]
    answer = rclient.post(f"/api/deployments/{ident}/domains", json={"hostname": "a.example.org", "tls": "off"})
    assert answer.status_code == 422 and "tls" in error_of(answer)["fields"]


def test_a_name_belongs_to_one_deployment_only(rclient):
    first = create_deployment(rclient, name="first")["id"]
    second = create_deployment(rclient, name="second")["id"]
    assert add(rclient, first, "www.example.org").status_code == 201
    taken = add(rclient, second, "www.example.org")
    assert taken.status_code == 409 and error_of(taken)["code"] == "hostname_taken"
    own = add(rclient, first, f"first.{DOMAIN}")
    assert own.status_code == 409 and "own name already" in error_of(own)["message"]
    # An admin may give a name under the platform's domain, but never another deployment's.
    other = add(rclient, first, f"second.{DOMAIN}")
    assert other.status_code == 409 and "another deployment" in error_of(other)["message"]
    assert add(rclient, first, f"shop.{DOMAIN}").status_code == 201


def test_a_member_cannot_claim_a_name_under_the_platforms_domain_nor_see_anothers(routed_app, rclient):
    _, member = make_user(routed_app, "mallory")
    _, other = make_user(routed_app, "alice")
    mine = create_deployment(rclient, token=member, name="mine")["id"]
    hers = create_deployment(rclient, token=other, name="hers")["id"]
    for name in (f"hers.{DOMAIN}", f"admin.{DOMAIN}", DOMAIN, f"deep.mine.{DOMAIN}"):
        refused = add(rclient, mine, name, token=member)
        assert refused.status_code == 403 and error_of(refused)["code"] == "hostname_reserved", name
    assert add(rclient, mine, "mine.example.org", token=member).status_code == 201
    assert add(rclient, hers, "hers.example.org", token=other).status_code == 201
    # Another's deployment is not there at all: not its list, not a claim, not a removal, not its access log.
    assert rclient.get(f"/api/deployments/{hers}/domains", token=member).status_code == 404
    assert add(rclient, hers, "steal.example.org", token=member).status_code == 404
    assert rclient.delete(f"/api/deployments/{hers}/domains/hers.example.org", token=member).status_code == 404
    assert rclient.get(f"/api/deployments/{hers}/logs/access", token=member).status_code == 404
    # Nor may a member remove another's domain through their own deployment.
    assert rclient.delete(f"/api/deployments/{mine}/domains/hers.example.org", token=member).status_code == 404
    assert Domain.get_by_hostname("hers.example.org") is not None


def test_the_desired_routes_follow_the_database(routed_app, rclient):
    ident = create_deployment(rclient, name="web")["id"]
    assert add(rclient, ident, "web.example.org").status_code == 201
    row = db.session.get(Deployment, uuid.UUID(ident))
    assert routing.desired_routes(db.session, DOMAIN) == []  # no release serves yet: no route
    row.status, row.live_release, row.ip_address, row.served_port = DeploymentStatus.RUNNING, 1, "10.0.0.5", 8000
    db.session.commit()
    [route] = routing.desired_routes(db.session, DOMAIN)
    assert route.hosts == ("web.apps.example.com", "web.example.org")
    assert route.upstreams == ("10.0.0.5:8000", "10.0.0.5:8001")  # the app's port, then the spare beside it
    assert rclient.get(f"/api/deployments/{ident}").get_json()["deployment"]["url"] == f"https://web.{DOMAIN}"
    row.status = DeploymentStatus.DELETING
    db.session.commit()
    assert routing.desired_routes(db.session, DOMAIN) == []


def test_without_a_router_the_domains_api_says_so(client, make_deployment):
    ident = make_deployment(name="plain")["id"]
    for answer in (client.get(f"/api/deployments/{ident}/domains"), add(client, ident, "plain.example.org"),
                   client.get(f"/api/deployments/{ident}/logs/access")):
        assert answer.status_code == 409 and error_of(answer)["code"] == "no_router"


def test_access_log_when_the_router_cannot_be_read(rclient):
    ident = create_deployment(rclient, name="logs")["id"]
    answer = rclient.get(f"/api/deployments/{ident}/logs/access")
    # No access log directory is configured here: nothing to read, an empty list.
    assert answer.status_code == 200 and answer.get_json()["entries"] == []
    assert rclient.get(f"/api/deployments/{ident}/logs/access?lines=0").status_code == 422


def test_a_deleted_deployment_takes_no_name(routed_app, rclient):
    ident = create_deployment(rclient, name="gone")["id"]
    row = db.session.get(Deployment, uuid.UUID(ident))
    row.status = DeploymentStatus.DELETING
    db.session.commit()
    refused = add(rclient, ident, "gone.example.org")
    assert refused.status_code == 409 and error_of(refused)["code"] == "invalid_state"
    assert Domain.get_by_hostname("gone.example.org") is None
