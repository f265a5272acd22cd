"""Short-lived chat conversations (scan a barcode, then type the quantity), kept in the database with an expiry."""

from __future__ import annotations
