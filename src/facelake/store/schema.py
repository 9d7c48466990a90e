"""The database schema (DESIGN.md's data model) as versioned migrations.

Each migration runs once, in order, inside a transaction, and bumps ``schema_version``;
opening an older database upgrades it, so SQL written against these columns keeps working.
"""

from __future__ import annotations

EMBEDDING_DIM = 128

MIGRATIONS: list[str] = [
    f"""
    CREATE SEQUENCE IF NOT EXISTS sighting_seq START 1;
    CREATE SEQUENCE IF NOT EXISTS person_seq START 1;
    CREATE TABLE images (
        image_id     VARCHAR PRIMARY KEY,   -- sha256 of the file's bytes
        uri          VARCHAR NOT NULL,      -- where it was first seen
        camera       VARCHAR,
        taken_at     TIMESTAMP,             -- EXIF DateTimeOriginal, else the file's mtime
        taken_at_source VARCHAR,            -- 'exif' | 'mtime' | NULL
        gps_lat      DOUBLE,
        gps_lon      DOUBLE,
        camera_make  VARCHAR,
        camera_model VARCHAR,
        format       VARCHAR,
        width        INTEGER,
        height       INTEGER,
        bytes        BIGINT,
        ingested_at  TIMESTAMP NOT NULL,
        status       VARCHAR NOT NULL CHECK (status IN ('ok', 'error')),
        error        VARCHAR
    );
    CREATE TABLE people (
        person_id    BIGINT PRIMARY KEY DEFAULT nextval('person_seq'),
        name         VARCHAR NOT NULL UNIQUE,
        consent_note VARCHAR NOT NULL,
        created_at   TIMESTAMP NOT NULL
    );
    CREATE TABLE sightings (
        sighting_id  BIGINT PRIMARY KEY DEFAULT nextval('sighting_seq'),
        image_id     VARCHAR NOT NULL,
        face_index   INTEGER NOT NULL,      -- 0 = largest face of the image
        box          FLOAT[4] NOT NULL,     -- x, y, w, h in pixels of the upright image
        landmarks    FLOAT[2][5] NOT NULL,  -- eyes, nose, mouth corners as [x, y]
        det_score    FLOAT NOT NULL,
        quality      FLOAT NOT NULL,
        embedding    FLOAT[{EMBEDDING_DIM}],
        model        VARCHAR NOT NULL,
        person_id    BIGINT,
        cluster_id   BIGINT,
        match_score  FLOAT,
        thumb        BLOB,                  -- small JPEG face crop
        UNIQUE (image_id, face_index)
    );
    CREATE TABLE enrollments (
        person_id    BIGINT NOT NULL,
        sighting_id  BIGINT NOT NULL,
        PRIMARY KEY (person_id, sighting_id)
    );
    CREATE TABLE audit (
        "at"     TIMESTAMP NOT NULL,    -- quoted: AT is a keyword in DuckDB
        actor    VARCHAR NOT NULL,
        action   VARCHAR NOT NULL,
        subject  VARCHAR
    );
    CREATE INDEX sightings_image ON sightings (image_id);
    """,
    """
    -- Which object versions were already stored, so re-listing a bucket downloads nothing seen.
    CREATE TABLE source_objects (
        uri       VARCHAR NOT NULL,         -- path, gs://bucket/key or s3://bucket/key
        version   VARCHAR NOT NULL,         -- mtime:size, GCS generation or S3 ETag
        image_id  VARCHAR NOT NULL,
        seen_at   TIMESTAMP NOT NULL,
        PRIMARY KEY (uri, version)
    );
    -- How far each table was exported to a warehouse (incremental exports).
    CREATE TABLE exports (
        target      VARCHAR NOT NULL,       -- e.g. bigquery:project.dataset
        table_name  VARCHAR NOT NULL,
        high_water  VARCHAR NOT NULL,
        exported_at TIMESTAMP NOT NULL,
        PRIMARY KEY (target, table_name)
    );
    """,
    """
    -- Embeddings of any model: dlib's ResNet is 128-D, MobileFaceNet 192-D; each row names its model.
    DROP INDEX sightings_image;
    ALTER TABLE sightings ALTER COLUMN embedding SET DATA TYPE FLOAT[];
    CREATE INDEX sightings_image ON sightings (image_id);
    """,
    """
    -- "Not this person": the owner's corrections, never repeated for the face or its near-duplicates.
    CREATE TABLE rejections (
        sighting_id BIGINT NOT NULL,
        person_id   BIGINT NOT NULL,
        "at"        TIMESTAMP NOT NULL,
        PRIMARY KEY (sighting_id, person_id)
    );
    """,
    """
    -- API tokens: only a hash is kept; the token itself is shown once, when it is created.
    CREATE SEQUENCE IF NOT EXISTS token_seq START 1;
    CREATE TABLE tokens (
        token_id    BIGINT PRIMARY KEY DEFAULT nextval('token_seq'),
        name        VARCHAR NOT NULL UNIQUE,
        scope       VARCHAR NOT NULL CHECK (scope IN ('read', 'admin')),
        token_hash  VARCHAR NOT NULL UNIQUE,  -- sha256 of the token
        created_at  TIMESTAMP NOT NULL,
        revoked_at  TIMESTAMP
    );
    """,
    """
    -- "Not a face": detections the owner dismissed; their embedding and crop are erased.
    CREATE TABLE not_faces (
        sighting_id BIGINT PRIMARY KEY,
        "at"        TIMESTAMP NOT NULL
    );
    """,
    """
    -- Each face with room around it, for re-embedding with another model; erased with the embedding.
    CREATE TABLE face_contexts (
        sighting_id BIGINT PRIMARY KEY,
        jpeg        BLOB NOT NULL,
        box         FLOAT[4] NOT NULL,      -- in the JPEG's pixels
        landmarks   FLOAT[2][5] NOT NULL
    );
    """,
    """
    CREATE SEQUENCE IF NOT EXISTS track_seq START 1;
    CREATE TABLE tracks (
        track_id     BIGINT PRIMARY KEY DEFAULT nextval('track_seq'),
        image_id     VARCHAR NOT NULL,      -- the clip (or stream segment) the track was seen in
        track_index  INTEGER NOT NULL,      -- 0 = the clip's first track to start
        camera       VARCHAR,
        started_at   TIMESTAMP,             -- the clip's capture time plus start_s
        ended_at     TIMESTAMP,
        start_s      DOUBLE NOT NULL,       -- seconds from the start of the clip
        end_s        DOUBLE NOT NULL,
        frames       INTEGER NOT NULL,      -- analysed frames the face was seen in
        person_id    BIGINT,
        cluster_id   BIGINT,
        match_score  FLOAT,
        best_sighting_id BIGINT,
        template     FLOAT[],               -- quality-weighted mean embedding, L2-normalised
        model        VARCHAR NOT NULL,
        still        BLOB,                  -- JPEG of the frame at the best face (at most 640 px wide)
        UNIQUE (image_id, track_index)
    );
    ALTER TABLE sightings ADD COLUMN track_id BIGINT;
    ALTER TABLE sightings ADD COLUMN offset_s DOUBLE;
    """,
    """
    -- A file name that is not UTF-8: uri shows its odd bytes as \\xNN, uri_bytes keeps them exactly.
    ALTER TABLE images ADD COLUMN uri_bytes BLOB;
    """,
    """
    -- Which faces' biometric data was erased (forget, purge, "not a face"), by key only: copies
    -- outside the database (the Cloud Function's lake, BigQuery) are erased by these keys, and
    -- `facelake import` never brings them back. No crop, embedding or person is kept here.
    CREATE TABLE erased (
        image_id    VARCHAR NOT NULL,
        face_index  INTEGER,                -- NULL: the whole image went (an enrollment photo)
        "at"        TIMESTAMP NOT NULL
    );
    CREATE INDEX erased_image ON erased (image_id);
    CREATE INDEX erased_at ON erased ("at");
    """,
    """
    -- The cluster a face was in before `clusters merge` moved it: `clusters split` gives it back.
    ALTER TABLE sightings ADD COLUMN merged_from BIGINT;
    """,
    """
    -- Its image's capture time (else the time it was stored) and camera, kept on the sighting:
    -- every listing filters and sorts by them, and the join to images to do so cost 370-630 ms at
    -- a million sightings (bench/million.py), against 10-15 ms on one table.
    ALTER TABLE sightings ADD COLUMN seen_at TIMESTAMP;
    ALTER TABLE sightings ADD COLUMN camera VARCHAR;
    UPDATE sightings SET seen_at = coalesce(i.taken_at, i.ingested_at), camera = i.camera
        FROM images i WHERE i.image_id = sightings.image_id;
    """,
    """
    -- How far each face's embedding carries an identity (vision/recognisability.py); NULL: not scored.
    ALTER TABLE sightings ADD COLUMN recognisability FLOAT;
    """,
]
"""DuckDB's schema, one step per release that changed it."""


PG_MIGRATIONS: list[str] = [
    """
    -- The same tables as DuckDB's, in PostgreSQL's types. {embedding} is `vector` (pgvector,
    -- any dimension: each row names its model) where the server has it, else `real[]`.
    CREATE TABLE images (
        image_id     TEXT PRIMARY KEY,
        uri          TEXT NOT NULL,
        camera       TEXT,
        taken_at     TIMESTAMP,
        taken_at_source TEXT,
        gps_lat      DOUBLE PRECISION,
        gps_lon      DOUBLE PRECISION,
        camera_make  TEXT,
        camera_model TEXT,
        format       TEXT,
        width        INTEGER,
        height       INTEGER,
        bytes        BIGINT,
        ingested_at  TIMESTAMP NOT NULL,
        status       TEXT NOT NULL CHECK (status IN ('ok', 'error')),
        error        TEXT
    );
    CREATE TABLE people (
        person_id    BIGSERIAL PRIMARY KEY,
        name         TEXT NOT NULL UNIQUE,
        consent_note TEXT NOT NULL,
        created_at   TIMESTAMP NOT NULL
    );
    CREATE TABLE sightings (
        sighting_id  BIGSERIAL PRIMARY KEY,
        image_id     TEXT NOT NULL,
        face_index   INTEGER NOT NULL,
        box          REAL[] NOT NULL,
        landmarks    REAL[] NOT NULL,
        det_score    REAL NOT NULL,
        quality      REAL NOT NULL,
        embedding    {embedding},
        model        TEXT NOT NULL,
        person_id    BIGINT,
        cluster_id   BIGINT,
        match_score  REAL,
        thumb        BYTEA,
        UNIQUE (image_id, face_index)
    );
    CREATE INDEX sightings_image ON sightings (image_id);
    CREATE INDEX sightings_person ON sightings (person_id);
    CREATE TABLE enrollments (
        person_id    BIGINT NOT NULL,
        sighting_id  BIGINT NOT NULL,
        PRIMARY KEY (person_id, sighting_id)
    );
    CREATE TABLE audit (
        "at"     TIMESTAMP NOT NULL,
        actor    TEXT NOT NULL,
        action   TEXT NOT NULL,
        subject  TEXT
    );
    CREATE TABLE source_objects (
        uri       TEXT NOT NULL,
        version   TEXT NOT NULL,
        image_id  TEXT NOT NULL,
        seen_at   TIMESTAMP NOT NULL,
        PRIMARY KEY (uri, version)
    );
    CREATE TABLE exports (
        target      TEXT NOT NULL,
        table_name  TEXT NOT NULL,
        high_water  TEXT NOT NULL,
        exported_at TIMESTAMP NOT NULL,
        PRIMARY KEY (target, table_name)
    );
    CREATE TABLE rejections (
        sighting_id BIGINT NOT NULL,
        person_id   BIGINT NOT NULL,
        "at"        TIMESTAMP NOT NULL,
        PRIMARY KEY (sighting_id, person_id)
    );
    CREATE TABLE tokens (
        token_id    BIGSERIAL PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        scope       TEXT NOT NULL CHECK (scope IN ('read', 'admin')),
        token_hash  TEXT NOT NULL UNIQUE,
        created_at  TIMESTAMP NOT NULL,
        revoked_at  TIMESTAMP
    );
    CREATE TABLE not_faces (
        sighting_id BIGINT PRIMARY KEY,
        "at"        TIMESTAMP NOT NULL
    );
    CREATE TABLE face_contexts (
        sighting_id BIGINT PRIMARY KEY,
        jpeg        BYTEA NOT NULL,
        box         REAL[] NOT NULL,
        landmarks   REAL[] NOT NULL
    );
    """,
    """
    CREATE TABLE tracks (
        track_id     BIGSERIAL PRIMARY KEY,
        image_id     TEXT NOT NULL,
        track_index  INTEGER NOT NULL,
        camera       TEXT,
        started_at   TIMESTAMP,
        ended_at     TIMESTAMP,
        start_s      DOUBLE PRECISION NOT NULL,
        end_s        DOUBLE PRECISION NOT NULL,
        frames       INTEGER NOT NULL,
        person_id    BIGINT,
        cluster_id   BIGINT,
        match_score  REAL,
        best_sighting_id BIGINT,
        template     REAL[],
        model        TEXT NOT NULL,
        still        BYTEA,
        UNIQUE (image_id, track_index)
    );
    ALTER TABLE sightings ADD COLUMN track_id BIGINT, ADD COLUMN offset_s DOUBLE PRECISION;
    CREATE INDEX tracks_person ON tracks (person_id);
    """,
    """
    ALTER TABLE images ADD COLUMN uri_bytes BYTEA;
    """,
    """
    CREATE TABLE erased (
        image_id    TEXT NOT NULL,
        face_index  INTEGER,
        "at"        TIMESTAMP NOT NULL
    );
    CREATE INDEX erased_image ON erased (image_id);
    CREATE INDEX erased_at ON erased ("at");
    """,
    """
    ALTER TABLE sightings ADD COLUMN merged_from BIGINT;
    """,
    """
    ALTER TABLE sightings ADD COLUMN seen_at TIMESTAMP, ADD COLUMN camera TEXT;
    UPDATE sightings SET seen_at = coalesce(i.taken_at, i.ingested_at), camera = i.camera
        FROM images i WHERE i.image_id = sightings.image_id;
    -- Keyset pages newest first, whole or by camera or person (EXPLAIN plans in docs/scale.md).
    CREATE INDEX sightings_seen ON sightings (seen_at DESC, sighting_id DESC);
    CREATE INDEX sightings_camera_seen ON sightings (camera, seen_at DESC, sighting_id DESC);
    CREATE INDEX sightings_person_seen ON sightings (person_id, seen_at DESC, sighting_id DESC);
    """,
    """
    ALTER TABLE sightings ADD COLUMN recognisability REAL;
    """,
    """
    -- What the plans of the listings and dashboard pages need at a million sightings (EXPLAIN
    -- plans in docs/scale.md). The API pages by id: a filter on a rare value walked the primary
    -- key backwards past every other row, and `?cluster=` read the whole table (0.5 s at 100k).
    -- By person: (person_id, sighting_id) also serves every `person_id = ?` the old index did.
    DROP INDEX sightings_person;
    CREATE INDEX sightings_person_id ON sightings (person_id, sighting_id);
    CREATE INDEX sightings_camera_id ON sightings (camera, sighting_id);
    -- Clusters: the ?cluster= page, a cluster's best faces, and the /clusters counts read from
    -- the index alone (its INCLUDE columns), never the heap of a million rows with their vectors.
    CREATE INDEX sightings_cluster ON sightings (cluster_id, sighting_id) INCLUDE (person_id, quality, seen_at, camera)
        WHERE cluster_id IS NOT NULL;
    -- The cameras a person was seen by, and every camera's images: read by skipping through these.
    CREATE INDEX sightings_person_camera ON sightings (person_id, camera);
    CREATE INDEX images_camera ON images (camera);
    -- The map: GPS-tagged images only (most cameras have none: then the map reads nothing).
    CREATE INDEX images_gps ON images (image_id) WHERE gps_lat IS NOT NULL;
    """,
    """
    -- Sightings per camera and hour of capture time (/activity, the report) and per person (/people),
    -- kept by triggers: counting a million sightings per request took 0.55 s twice a page, and a
    -- person's 833,331 faces 129 ms. Each table is a log of changes, (key, +n or -n) per statement,
    -- never updated in place: a writer only appends, so writers never wait for each other's commit
    -- on a hot row of counts (and cannot deadlock on one). Every 2,000th change folds both logs
    -- into one row per key; `PgReports.hours` and `PgPeople` sum what is there. Enrollment faces and
    -- faces without camera or time are not counted per hour, as the pages never count them.
    CREATE TABLE sighting_hours (camera TEXT NOT NULL, hour TIMESTAMP NOT NULL, n BIGINT NOT NULL);
    CREATE INDEX sighting_hours_camera ON sighting_hours (camera, hour);
    CREATE TABLE person_sightings (person_id BIGINT NOT NULL, n BIGINT NOT NULL);
    CREATE INDEX person_sightings_person ON person_sightings (person_id);
    CREATE SEQUENCE sighting_counts_changes;
    INSERT INTO sighting_hours SELECT camera, date_trunc('hour', seen_at), count(*) FROM sightings
        WHERE camera <> 'enrollment' AND seen_at IS NOT NULL GROUP BY 1, 2;
    INSERT INTO person_sightings SELECT person_id, count(*) FROM sightings WHERE person_id IS NOT NULL GROUP BY 1;
    CREATE FUNCTION sighting_counts_compact() RETURNS void LANGUAGE sql AS $$
        WITH gone AS (DELETE FROM sighting_hours RETURNING camera, hour, n)
        INSERT INTO sighting_hours SELECT camera, hour, sum(n) FROM gone GROUP BY 1, 2 HAVING sum(n) <> 0;
        WITH gone AS (DELETE FROM person_sightings RETURNING person_id, n)
        INSERT INTO person_sightings SELECT person_id, sum(n) FROM gone GROUP BY 1 HAVING sum(n) <> 0;
    $$;
    CREATE FUNCTION sighting_counts_log() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO sighting_hours SELECT camera, date_trunc('hour', seen_at), count(*) FROM new_rows
                WHERE camera <> 'enrollment' AND seen_at IS NOT NULL GROUP BY 1, 2;
            INSERT INTO person_sightings SELECT person_id, count(*) FROM new_rows
                WHERE person_id IS NOT NULL GROUP BY 1;
        ELSE
            INSERT INTO sighting_hours SELECT camera, date_trunc('hour', seen_at), -count(*) FROM old_rows
                WHERE camera <> 'enrollment' AND seen_at IS NOT NULL GROUP BY 1, 2;
            INSERT INTO person_sightings SELECT person_id, -count(*) FROM old_rows
                WHERE person_id IS NOT NULL GROUP BY 1;
        END IF;
        IF nextval('sighting_counts_changes') % 2000 = 0 THEN
            PERFORM sighting_counts_compact();
        END IF;
        RETURN NULL;
    END $$;
    -- A face moved (its camera or time changed: a migration, a mended copy) or named, unnamed or
    -- renamed to another person is counted per row, and only for statements that set those
    -- columns: clustering, re-embedding and erasing crops never fire it.
    CREATE FUNCTION sighting_counts_move() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF OLD.camera IS DISTINCT FROM NEW.camera OR OLD.seen_at IS DISTINCT FROM NEW.seen_at THEN
            IF OLD.camera <> 'enrollment' AND OLD.seen_at IS NOT NULL THEN
                INSERT INTO sighting_hours VALUES (OLD.camera, date_trunc('hour', OLD.seen_at), -1);
            END IF;
            IF NEW.camera <> 'enrollment' AND NEW.seen_at IS NOT NULL THEN
                INSERT INTO sighting_hours VALUES (NEW.camera, date_trunc('hour', NEW.seen_at), 1);
            END IF;
        END IF;
        IF OLD.person_id IS DISTINCT FROM NEW.person_id THEN
            IF OLD.person_id IS NOT NULL THEN
                INSERT INTO person_sightings VALUES (OLD.person_id, -1);
            END IF;
            IF NEW.person_id IS NOT NULL THEN
                INSERT INTO person_sightings VALUES (NEW.person_id, 1);
            END IF;
        END IF;
        IF nextval('sighting_counts_changes') % 2000 = 0 THEN
            PERFORM sighting_counts_compact();
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER sighting_counts_insert AFTER INSERT ON sightings REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION sighting_counts_log();
    CREATE TRIGGER sighting_counts_delete AFTER DELETE ON sightings REFERENCING OLD TABLE AS old_rows
        FOR EACH STATEMENT EXECUTE FUNCTION sighting_counts_log();
    CREATE TRIGGER sighting_counts_update AFTER UPDATE OF camera, seen_at, person_id ON sightings
        FOR EACH ROW EXECUTE FUNCTION sighting_counts_move();
    """,
    """
    -- Unnamed faces per cluster (/clusters), kept by triggers as the step before keeps the hours
    -- and people: counting the 166,665 clustered faces of a million sightings took 26-34 ms of
    -- the page's 39 / 49 ms (p50 / p99). The same kind of log, (cluster, +n or -n): a face counts
    -- for its cluster while it has no person; inserting, deleting, naming, moving or unclustering
    -- it is logged, by statement for inserts and deletes and by row for updates (only faces that
    -- join, leave or change cluster fire it). A clustering run moves many faces at once, so the
    -- log folds on its own, apart from the hours and people.
    CREATE TABLE cluster_sightings (cluster_id BIGINT NOT NULL, n BIGINT NOT NULL);
    CREATE INDEX cluster_sightings_cluster ON cluster_sightings (cluster_id);
    INSERT INTO cluster_sightings SELECT cluster_id, count(*) FROM sightings
        WHERE cluster_id IS NOT NULL AND person_id IS NULL GROUP BY 1;
    CREATE FUNCTION cluster_counts_compact() RETURNS void LANGUAGE sql AS $$
        WITH gone AS (DELETE FROM cluster_sightings RETURNING cluster_id, n)
        INSERT INTO cluster_sightings SELECT cluster_id, sum(n) FROM gone GROUP BY 1 HAVING sum(n) <> 0;
    $$;
    CREATE FUNCTION cluster_counts_log() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO cluster_sightings SELECT cluster_id, count(*) FROM new_rows
                WHERE cluster_id IS NOT NULL AND person_id IS NULL GROUP BY 1;
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO cluster_sightings SELECT cluster_id, -count(*) FROM old_rows
                WHERE cluster_id IS NOT NULL AND person_id IS NULL GROUP BY 1;
        ELSE
            IF OLD.cluster_id IS NOT NULL AND OLD.person_id IS NULL THEN
                INSERT INTO cluster_sightings VALUES (OLD.cluster_id, -1);
            END IF;
            IF NEW.cluster_id IS NOT NULL AND NEW.person_id IS NULL THEN
                INSERT INTO cluster_sightings VALUES (NEW.cluster_id, 1);
            END IF;
        END IF;
        IF nextval('sighting_counts_changes') % 2000 = 0 THEN
            PERFORM cluster_counts_compact();
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER cluster_counts_insert AFTER INSERT ON sightings REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION cluster_counts_log();
    CREATE TRIGGER cluster_counts_delete AFTER DELETE ON sightings REFERENCING OLD TABLE AS old_rows
        FOR EACH STATEMENT EXECUTE FUNCTION cluster_counts_log();
    CREATE TRIGGER cluster_counts_update AFTER UPDATE OF cluster_id, person_id ON sightings FOR EACH ROW
        WHEN (OLD.cluster_id IS DISTINCT FROM NEW.cluster_id OR (OLD.person_id IS NULL) <> (NEW.person_id IS NULL))
        EXECUTE FUNCTION cluster_counts_log();
    """,
]
"""PostgreSQL's schema: its first step is DuckDB's schema as it stood when PostgreSQL came;
each later step matches one of DuckDB's (then: tracks, uri_bytes, erased, merged_from, seen_at,
recognisability), except the last two: PostgreSQL's own indexes for the pages at a million sightings, and
the sightings per camera and hour and per person its triggers keep (``PgReports.hours``, ``PgPeople``)."""

SEQUENCES = {"people": ("person_id", "person_seq"), "sightings": ("sighting_id", "sighting_seq"),
             "tokens": ("token_id", "token_seq"), "tracks": ("track_id", "track_seq")}
"""Tables whose ids come from a sequence: (column, DuckDB's sequence), for `facelake copy`
(PostgreSQL's serial columns name their own: ``pg_get_serial_sequence``)."""

TABLES = ["images", "people", "sightings", "enrollments", "audit", "source_objects", "exports", "rejections",
          "tokens", "not_faces", "face_contexts", "tracks", "erased"]
"""Every data table, in an order that `facelake copy` can fill."""
