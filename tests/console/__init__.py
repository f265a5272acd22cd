"""The console: login, settings without a restart, boards and exports, in the browser too."""
