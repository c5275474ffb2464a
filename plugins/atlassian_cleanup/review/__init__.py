"""The review queue: people whose first action waits for an admin, and the admins' decisions."""
