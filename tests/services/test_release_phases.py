"""The deployer's newer steps on a FakeTransport: the build cache, the release phase, the Procfile's processes
through a release and a switch back, and a failure before the switch while a release serves."""
from backend.deploy.deployer import HASH_FILES, RELOCATE_VENV
from backend.models import DeploymentStatus
from backend.services.provisioning import provision
from backend.services.release_runs import run_release
from tests.services.conftest import FILES, fresh, log_lines, redeploy, releases, script_repository

EXISTS = 'test -e "$1" || test -h "$1"'


def guest_with(transports, ident, files):
    """The deployment's FakeTransport answering for a repository of files, with a venv that pip fills and a
    `cat` and `test -e` that read its in-memory tree."""
    guest = script_repository(transports.guest(ident), files=files)
    guest.script("python3", "-m", "venv", handler=lambda t, argv: t.make_dirs(f"{t.commands[-1].cwd}/.venv"))
    guest.script("cat", handler=lambda t, argv: (0, t.files[argv[-1]].decode().splitlines())
                 if argv[-1] in t.files else (1, [f"cat: {argv[-1]}: No such file or directory"]))
    guest.script("sh", "-c", EXISTS, handler=lambda t, argv: (0 if argv[-1] in t.dirs or argv[-1] in t.files
                                                              else 1, []))
    return guest


def pip_installs(guest, version):
    return [c.argv for c in guest.ran(".venv/bin/pip", "install") if c.cwd == f"/srv/paas/releases/{version}/src"]


def test_the_build_cache_reuses_the_virtualenv_only_while_the_dependency_files_are_unchanged(
        new_deployment, job, transports, app_server, loopback_guests, platform):
    ident = new_deployment(port=app_server.port)
    guest = guest_with(transports, ident, FILES)
    digests = {"requirements.txt": "a" * 64}
    guest.script("sh", "-c", HASH_FILES, handler=lambda t, argv: (0, [f"{d}  {n}" for n, d in digests.items()]))
    assert provision(job(ident), deploy_app=run_release) is DeploymentStatus.RUNNING
    key = guest.files["/srv/paas/releases/1/build-key"]

    redeploy(ident, platform)
    assert provision(job(ident), deploy_app=run_release) is DeploymentStatus.RUNNING
    assert guest.files["/srv/paas/releases/2/build-key"] == key
    copy = guest.ran("cp", "-a")[-1]
    assert copy.argv[-2:] == ["/srv/paas/releases/1/src/.venv", "/srv/paas/releases/2/src/.venv"]
    relocate = guest.ran("python3", "-c", RELOCATE_VENV)[-1]
    assert copy.as_app_user and relocate.as_app_user and relocate.argv[-2:] == copy.argv[-2:]
    assert not [c for c in guest.ran("python3", "-m", "venv") if c.cwd == "/srv/paas/releases/2/src"]
    # pip still looks at requirements.txt (satisfied at once; it installs what the key cannot see, -e . say)
    assert len(pip_installs(guest, 2)) == 1 and "-r" in pip_installs(guest, 2)[0]
    assert ("step", "==> build cache: the dependencies are those of release 1; reusing its .venv") \
        in log_lines(ident, 2)

    digests["requirements.txt"] = "b" * 64
    redeploy(ident, platform)
    assert provision(job(ident), deploy_app=run_release) is DeploymentStatus.RUNNING
    assert guest.files["/srv/paas/releases/3/build-key"] != key
    assert len(guest.ran("cp", "-a")) == 1 and len(pip_installs(guest, 3)) == 1
    assert [c for c in guest.ran("python3", "-m", "venv") if c.cwd == "/srv/paas/releases/3/src"]
    assert ("out", "build cache: no earlier release on the guest has these dependencies; installing") \
        in log_lines(ident, 3)


def test_a_repository_with_its_own_virtualenv_is_installed_as_it_says(new_deployment, job, transports, app_server,
                                                                      loopback_guests, platform):
    ident = new_deployment(port=app_server.port)
    guest = guest_with(transports, ident, FILES)
    assert provision(job(ident), deploy_app=run_release) is DeploymentStatus.RUNNING
    redeploy(ident, platform)
    guest.script("git", "clone", handler=lambda t, argv: t.make_dirs(argv[-1] + "/.venv"))
    assert provision(job(ident), deploy_app=run_release) is DeploymentStatus.RUNNING
    assert guest.ran("cp", "-a") == [] and len(pip_installs(guest, 2)) == 1
    assert ("out", "build cache: the repository has its own .venv; installing as it says") in log_lines(ident, 2)


PROCFILE = {**FILES, "Procfile": "release: flask --app app init-db\nworker: celery -A app worker\n"}


def test_the_release_phase_runs_before_the_switch_and_the_processes_follow_the_release(
        new_deployment, job, transports, app_server, dead_port, loopback_guests, platform):
    ident = new_deployment(port=app_server.port)
    guest = guest_with(transports, ident, PROCFILE)
    assert provision(job(ident), deploy_app=run_release) is DeploymentStatus.RUNNING

    [phase] = guest.ran("sh", "-c", "--", "flask --app app init-db")
    assert phase.as_app_user and phase.cwd == "/srv/paas/releases/1/src" and phase.env["HOME"].endswith("/1/home")
    assert phase.argv[:5] == ["sh", "-c", '. "$1" && shift && exec "$@"', "paas-build",
                              "/srv/paas/releases/1/env.sh"]
    calls = [(action, name) for action, name, _ in guest.service_calls]
    assert calls == [("install", "paas-app"), ("restart", "paas-app"), ("install", "paas-app-worker"),
                     ("restart", "paas-app-worker")]
    worker = guest.installed["paas-app-worker"]
    assert worker.exec_start == ("/srv/paas/current/proc-worker",) and worker.restart_always
    assert guest.files["/srv/paas/releases/1/processes"] == b"worker\n"
    assert b"exec sh -c -- 'celery -A app worker'" in guest.files["/srv/paas/releases/1/proc-worker"]
    assert releases(ident)[1][3]["processes"] == {"web": releases(ident)[1][3]["start"],
                                                  "worker": "celery -A app worker"}

    # Release 2 has a clock instead of the worker, and its web process never answers: switched back, the worker
    # of release 1 runs again and the clock's unit is gone.
    guest_with(transports, ident, {**FILES, "Procfile": "clock: python clock.py\n"})
    guest.app_runs = lambda transport: transport.current() != "releases/2"
    redeploy(ident, platform, port=dead_port)
    guest.service_calls.clear()
    assert provision(job(ident), deploy_app=run_release) is DeploymentStatus.RUNNING
    assert releases(ident)[2][0] == "failed" and guest.current() == "releases/1"
    calls = [(action, name, where) for action, name, where in guest.service_calls]
    assert calls == [("install", "paas-app", "releases/2"), ("restart", "paas-app", "releases/2"),
                     ("install", "paas-app", "releases/1"), ("restart", "paas-app", "releases/1"),
                     ("install", "paas-app-worker", "releases/1"), ("restart", "paas-app-worker", "releases/1")]
    assert sorted(guest.installed) == ["paas-app", "paas-app-worker"]


def test_a_failing_release_phase_or_running_out_of_time_before_the_switch_keeps_the_live_release(
        new_deployment, job, transports, app_server, loopback_guests, platform):
    ident = new_deployment(port=app_server.port)
    guest = guest_with(transports, ident, PROCFILE)
    assert provision(job(ident), deploy_app=run_release) is DeploymentStatus.RUNNING

    guest.script("sh", "-c", "--", "flask --app app init-db", exit_code=4, output=["no such table: notes"])
    redeploy(ident, platform)
    guest.service_calls.clear()
    assert provision(job(ident), deploy_app=run_release) is DeploymentStatus.RUNNING
    status, _, error, _ = releases(ident)[2]
    assert status == "failed" and error.startswith("release command (Procfile) exited with status 4")
    assert "no such table: notes" in error and error.endswith("(release 1 still serves)")
    assert guest.service_calls == [] and guest.current() == "releases/1"

    # The job's time runs out in the middle of the build (pip takes all but half a second of it): the platform
    # takes a moment more to see that release 1 still serves, and the deployment still runs it.
    guest.script("sh", "-c", "--", "flask --app app init-db")
    clock = {"spent": 0.0}
    guest.script(".venv/bin/pip", "install", handler=lambda t, argv: clock.update(spent=99.5))
    redeploy(ident, platform)
    context = job(ident, time_limit=100)
    real_left = context.seconds_left
    context.seconds_left = lambda: real_left() - clock["spent"]
    assert provision(context, deploy_app=run_release) is DeploymentStatus.RUNNING
    status, _, error, _ = releases(ident)[3]
    assert status == "failed" and "time limit" in error and error.endswith("(release 1 still serves)")
    assert fresh(ident).live_release == 1
