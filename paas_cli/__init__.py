"""`paas`: the platform's command-line client. It talks only to the public REST API (never to the database or
the backend's code), so that it works against any platform it can reach, as a developer's terminal would."""
