"""Plain helpers the test modules share (fixtures stay in the conftest.py files).

- accounts: users, tokens and the test client that authenticates as the suite's admin
- apps: building apps for tests (create_test_app) and apps on the fake Proxmox
- api: request bodies, creating deployments, waiting for them and reading them through the API
- database: the engines the suite runs on and their schema
- network: free ports, serving an app and HTTP calls on loopback
- repos: local git repositories standing for GitHub ones, and the sample apps put in them
"""
