"""Tasks: generation, chasing, the flow in chat, photos, points, the task CLI."""
