"""The chat router: basic handlers and what each role may do."""
