"""The test suite, in folders by area; shared fixtures in conftest.py, helpers (factories, *_support) here."""

from pathlib import Path

TESTS = Path(__file__).resolve().parent  # tests/: payloads/ and data/ are found from here, whatever folder asks
