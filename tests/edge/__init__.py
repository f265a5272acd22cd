"""The edge: WeCom callbacks, the client, serving, the dashboard session, the database and its migrations."""
