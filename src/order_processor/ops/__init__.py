"""The operator's tools: the ledger audit, the dead letters, the deployment's status."""
