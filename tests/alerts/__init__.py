"""Stock alerts: digests, quiet hours, the supervisors' morning digest."""
