"""Running the pipeline on more than one machine's workers (Ray)."""
