"""Rescue requests: intake (and its group-commit writer), the customer and staff views, the
dispatcher's actions on one request, and their queries."""
