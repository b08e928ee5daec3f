"""autostamp."""
