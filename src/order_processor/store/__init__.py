"""DynamoDB adapters: key builders, async DAOs, the user lock."""
