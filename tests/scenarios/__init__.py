"""A whole day per role, played through the real edge (signed callbacks) and the WeCom sandbox as a real server."""
