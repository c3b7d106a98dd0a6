"""Plain helpers the test modules share (fixtures stay in the conftest.py files).

- accounts: users, tokens and the test client that authenticates as the suite's admin
- apps: building apps for tests (create_test_app)
- api: request bodies for the API
- database: the engines the suite runs on and their schema
"""
