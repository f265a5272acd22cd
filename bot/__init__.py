"""storebot's edge and wiring: app factory, config, WeCom callback and client, outbox, HTTP API, CLI, sandbox."""
