"""The customer loop: members, segments, campaigns and their health, customer chat."""
