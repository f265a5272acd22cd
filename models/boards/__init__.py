"""The console's boards: read-only, set-based queries per board over a viewer's store scope and filters."""
