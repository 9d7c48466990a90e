"""What starts an ingest: the folder watcher / bucket poller, and the Cloud Function entry point."""
