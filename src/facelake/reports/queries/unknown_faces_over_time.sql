-- Unknown and known faces per day, and how many candidate identities (clusters) the unknown ones form.
SELECT CAST(i.taken_at AS DATE) AS day,
       SUM(CASE WHEN s.person_id IS NULL THEN 1 ELSE 0 END) AS unknown_faces,
       SUM(CASE WHEN s.person_id IS NULL THEN 0 ELSE 1 END) AS known_faces,
       COUNT(DISTINCT CASE WHEN s.person_id IS NULL THEN s.cluster_id END) AS unknown_clusters
FROM sightings s JOIN images i ON i.image_id = s.image_id
WHERE i.taken_at IS NOT NULL
GROUP BY 1
ORDER BY 1
