"""Everything that knows the Mogplex v1 API: configuration, the read-only client, records."""
