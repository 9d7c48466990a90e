-- Every GPS-tagged image with its faces: the points of a map.
SELECT i.image_id, i.camera, i.taken_at, i.gps_lat, i.gps_lon,
       COUNT(s.face_index) AS faces,
       SUM(CASE WHEN s.person_id IS NULL THEN 0 ELSE 1 END) AS known_faces
FROM images i LEFT JOIN sightings s ON s.image_id = i.image_id
WHERE i.status = 'ok' AND i.gps_lat IS NOT NULL AND i.gps_lon IS NOT NULL
GROUP BY 1, 2, 3, 4, 5
ORDER BY 3, 1
