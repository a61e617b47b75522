"""The SQL mirror: schema, migrations, repositories, secrets and shared adapters."""
