#!/usr/bin/env bash
# One-time (and any-time) setup: virtualenv, dependencies, .env, database.
# Safe to run again: each step skips or repeats harmlessly.
#   ./setup.sh          set up, then print how to run and test
#   ./setup.sh --run    set up, then start the server
# PYTHON=python3.12 ./setup.sh picks the interpreter the virtualenv is built from.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

run=false
for arg in "$@"; do
    case "$arg" in
        --run) run=true ;;
        -h|--help)
            sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "setup.sh: unknown argument: $arg (try --help)" >&2
            exit 2
            ;;
    esac
done

python=${PYTHON:-python3}
venv_python=.venv/bin/python

if [ ! -x "$venv_python" ]; then
    echo "==> Creating virtualenv .venv with $python"
    if ! "$python" -m venv .venv; then
        echo "setup.sh: could not create .venv; on Debian/Ubuntu install python3-venv first" >&2
        exit 1
    fi
else
    echo "==> Using existing virtualenv .venv"
fi

echo "==> Installing requirements (runtime, then what the tests and lint add)"
"$venv_python" -m pip install --quiet --upgrade pip
"$venv_python" -m pip install --quiet -r requirements-dev.txt
echo "==> Installing the command-line client: .venv/bin/paas"
"$venv_python" -m pip install --quiet --no-deps -e .

if [ ! -f .env ]; then
    echo "==> Creating .env from .env.example"
    cp .env.example .env
else
    echo "==> Keeping existing .env"
fi

echo "==> Initialising the database"
"$venv_python" manage_db.py init
# The first admin and its API token, printed once, on a database without users (never again afterwards); its
# dashboard password goes to instance/admin-password (0600), never to the terminal.
"$venv_python" manage_db.py create-user admin --admin --if-no-users --password-file instance/admin-password

if [ "$run" = true ]; then
    echo "==> Starting the server"
    exec "$venv_python" app.py
fi

cat <<'DONE'

Setup complete.
  Run:   . .venv/bin/activate && python app.py
         then open http://127.0.0.1:5000 and log in as admin (first run: the password is in instance/admin-password)
  Test:  .venv/bin/python -m pytest          (everything; add -m 'not slow' for the quick subset)
DONE
