"""The WeCom sandbox: its API, CLI, duplicate check, external contacts, media faults, the phone page."""
