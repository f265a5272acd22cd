"""The durable queues and their workers: inbox, outbox (budgets, duplicate check), photos."""
