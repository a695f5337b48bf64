"""Single sign-on with OpenID Connect: ``config`` (from the environment) and ``flow`` (allauth adapters, views)."""
