"""Request bodies, one module per router (api/<router>.py reads api/schemas/<router>.py);
what they all share is in common.py."""
