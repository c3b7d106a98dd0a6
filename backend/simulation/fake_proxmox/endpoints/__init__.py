"""The fake's endpoint handlers, by what they deal with; routes.py maps requests to them."""
