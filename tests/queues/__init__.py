"""The durable queues: inbox, outbox, delivery once, the write gate, retention."""
