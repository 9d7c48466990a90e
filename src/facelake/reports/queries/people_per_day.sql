-- Each enrolled person's sightings per day, and on how many cameras. The enrollment photos
-- (camera 'enrollment') are the owner's reference pictures, not sightings: left out, as in
-- every other report. People appear by id: the warehouse holds no names.
SELECT CAST(i.taken_at AS DATE) AS day, s.person_id, COUNT(*) AS sightings, COUNT(DISTINCT i.camera) AS cameras
FROM sightings s JOIN images i ON i.image_id = s.image_id
WHERE s.person_id IS NOT NULL AND i.taken_at IS NOT NULL AND i.camera <> 'enrollment'
GROUP BY 1, 2
ORDER BY 1, 2
