"""What the entry points count alike: every attempt at a password, through the API (POST /api/auth/login,
PUT /api/me/password) or the dashboard (its login and password forms), draws on the same two counts, one per
address and one per username, RATELIMIT_LOGIN each. Counted apart, a username could be guessed as often again
through each door."""

# Flask-Limiter's shared scopes: the routes that name one share its counts.
PASSWORD_GUESSES_BY_ADDRESS = "password-guesses-by-address"
PASSWORD_GUESSES_BY_USERNAME = "password-guesses-by-username"


def address_count(address):
    return f"addr:{address}"


def username_count(username):
    """One count per username as typed (bounded); an attempt without one in text shares the empty name's."""
    return f"login:{username[:64]}" if isinstance(username, str) else "login:"
