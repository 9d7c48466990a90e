-- Each enrolled person's sightings per day, and on how many cameras.
SELECT CAST(i.taken_at AS DATE) AS day, s.person_id, COUNT(*) AS sightings, COUNT(DISTINCT i.camera) AS cameras
FROM sightings s JOIN images i ON i.image_id = s.image_id
WHERE s.person_id IS NOT NULL AND i.taken_at IS NOT NULL
GROUP BY 1, 2
ORDER BY 1, 2
