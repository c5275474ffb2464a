"""The restore flow: which requests may be restored, and how."""
