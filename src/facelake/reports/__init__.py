"""Reports over the stored sightings."""
