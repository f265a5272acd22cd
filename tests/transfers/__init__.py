"""Transfers between stores: chat, API, jobs, partial receipts, shipping."""
