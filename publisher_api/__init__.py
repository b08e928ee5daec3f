"""publisher_api."""
