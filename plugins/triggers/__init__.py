"""Event triggers for asset watchers: thin adapters from the triggerer to fieldpipe's event sources."""
