"""The expiry sweeper: due limit orders → ExpireOrder commands."""
