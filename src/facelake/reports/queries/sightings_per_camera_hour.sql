-- Faces seen per camera and hour of each day (capture time).
SELECT i.camera, CAST(i.taken_at AS DATE) AS day, EXTRACT(HOUR FROM i.taken_at) AS hour, COUNT(*) AS sightings
FROM sightings s JOIN images i ON i.image_id = s.image_id
WHERE i.taken_at IS NOT NULL
GROUP BY 1, 2, 3
ORDER BY 2, 3, 1
