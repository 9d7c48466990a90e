"""The HTTP API and dashboard (``facelake serve``); tokens work without the ``serve`` extra."""
