-- The plugin's own state inside Lumina's database, beside Lumina's tables and never in its
-- migrations. Every name starts with lumina_dedup_ so `lumina-dedup lumina uninstall` can drop
-- them all. Rows follow Lumina's: they reference images(id) and catalogs(id) ON DELETE CASCADE,
-- so deleting a photo or a catalog in Lumina also forgets what we knew about it.
-- Timestamps are naive UTC, as Lumina's are.
-- Only ever add: a column added since the first release also has its ALTER TABLE ... ADD COLUMN
-- IF NOT EXISTS below its table, for installs made before it (postgres_db.SCHEMA_VERSION).

CREATE TABLE IF NOT EXISTS lumina_dedup_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- index_id: the int64 key of a photo in our hash index (Lumina's ids are 64-hex text).
-- Never reused, so an index tombstone can never hide a new photo.
CREATE SEQUENCE IF NOT EXISTS lumina_dedup_index_id_seq;

-- One row per Lumina image we hashed. Codes are the uint64 hashes stored as signed BIGINT
-- (same 64 bits); geometry: the geometry words (8 uint64, big-endian, 64 bytes; NULL in rows
-- from before them: catalog/words.py); hash_version says which algorithm made them. facts:
-- what grouping and the keeper need from our own decode (width, height, format, camera, capture time...).
CREATE TABLE IF NOT EXISTS lumina_dedup_images (
    image_id VARCHAR PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
    catalog_id UUID NOT NULL REFERENCES catalogs(id) ON DELETE CASCADE,
    index_id BIGINT NOT NULL UNIQUE DEFAULT nextval('lumina_dedup_index_id_seq'),
    hashed_path TEXT NOT NULL,
    checksum TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    mtime_ns BIGINT NOT NULL,
    ahash BIGINT NOT NULL,
    dhash BIGINT NOT NULL,
    phash BIGINT NOT NULL,
    whash BIGINT NOT NULL,
    hash_version INTEGER NOT NULL,
    facts JSONB NOT NULL DEFAULT '{}',
    hashed_at TIMESTAMP NOT NULL,
    geometry BYTEA
);
ALTER TABLE lumina_dedup_images ADD COLUMN IF NOT EXISTS geometry BYTEA;
CREATE INDEX IF NOT EXISTS lumina_dedup_images_catalog ON lumina_dedup_images (catalog_id, hash_version);

-- Candidate pairs over index ids (a < b) with the four Hamming distances and the packed
-- geometric verdict (geo; 0 = none).
CREATE TABLE IF NOT EXISTS lumina_dedup_pairs (
    catalog_id UUID NOT NULL REFERENCES catalogs(id) ON DELETE CASCADE,
    a BIGINT NOT NULL,
    b BIGINT NOT NULL,
    ahash SMALLINT NOT NULL,
    dhash SMALLINT NOT NULL,
    phash SMALLINT NOT NULL,
    whash SMALLINT NOT NULL,
    geo INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (catalog_id, a, b),
    CHECK (a < b)
);
ALTER TABLE lumina_dedup_pairs ADD COLUMN IF NOT EXISTS geo INTEGER NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS lumina_dedup_pairs_b ON lumina_dedup_pairs (catalog_id, b);

-- Our groups: the truth. lumina_group_id is the copy in Lumina's duplicate_groups written when
-- show_in_lumina is on (Lumina's own duplicate job deletes it; we write it again).
CREATE TABLE IF NOT EXISTS lumina_dedup_groups (
    id BIGSERIAL PRIMARY KEY,
    catalog_id UUID NOT NULL REFERENCES catalogs(id) ON DELETE CASCADE,
    keeper_id VARCHAR NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    similarity_type TEXT NOT NULL,
    confidence INTEGER NOT NULL,
    keeper_reason TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    lumina_group_id INTEGER
);
CREATE INDEX IF NOT EXISTS lumina_dedup_groups_catalog ON lumina_dedup_groups (catalog_id);

-- The keeper is not a member row here (it is keeper_id).
CREATE TABLE IF NOT EXISTS lumina_dedup_members (
    group_id BIGINT NOT NULL REFERENCES lumina_dedup_groups(id) ON DELETE CASCADE,
    image_id VARCHAR NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    relation TEXT NOT NULL,  -- to the keeper: exact, derivative, raw+jpeg, edit, burst
    distance INTEGER NOT NULL,
    PRIMARY KEY (group_id, image_id)
);

-- Every run, and each row change it made (as JSON), so undo can reverse it.
CREATE TABLE IF NOT EXISTS lumina_dedup_runs (
    id BIGSERIAL PRIMARY KEY,
    catalog_id UUID NOT NULL REFERENCES catalogs(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    status TEXT NOT NULL DEFAULT 'running',
    changes INTEGER NOT NULL DEFAULT 0,
    report JSONB NOT NULL DEFAULT '{}',
    job_id TEXT
);

CREATE TABLE IF NOT EXISTS lumina_dedup_undo (
    run_id BIGINT NOT NULL REFERENCES lumina_dedup_runs(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    table_name TEXT NOT NULL,
    op TEXT NOT NULL,
    row JSONB NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- What a person decided in the review: never flag a pair again, a confirmed pair, a chosen
-- keeper (image_2 = image_1). Kept apart from anything a run recomputes.
CREATE TABLE IF NOT EXISTS lumina_dedup_decisions (
    id BIGSERIAL PRIMARY KEY,
    catalog_id UUID NOT NULL REFERENCES catalogs(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('not-duplicate', 'duplicate', 'keeper')),
    image_1 VARCHAR NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    image_2 VARCHAR NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (catalog_id, kind, image_1, image_2)
);
