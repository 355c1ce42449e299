"""The read model: order status, balances, prices and each user's recent events, kept in
Redis from the events topic for the gateway's reads. It serves reads, never decisions: the
saga and the matcher read DynamoDB."""
