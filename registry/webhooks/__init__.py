"""Webhook plumbing the services use: which destinations are allowed (destinations), how a
delivery is signed and its secret kept (signing), and the one HTTP request that sends it
(sending)."""
