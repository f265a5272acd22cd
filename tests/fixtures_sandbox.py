"""End-to-end fixtures: the WeCom sandbox on a real port and the real app wired to it (the `harness`)."""
