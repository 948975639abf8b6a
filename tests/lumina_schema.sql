-- Lumina's tables exactly as its lumina.db.connection.init_db() creates them (SQLAlchemy create_all
-- of lumina/db/models.py, package lumina 2.0.0): its 12 tables and nothing else, since that is all a
-- deployment can be counted on to have. Checked against the real thing (docs/lumina.md, "Checked
-- against the real Lumina"): pg_dump of a database built by init_db() and of this file differ only in
-- images.clip_embedding, added at the end of this file where the server has pgvector.
-- Not here, on purpose, because init_db() does not make them: job_batches (no DDL in Lumina's
-- repository; the one test that needs it adds it, test_lumina_support.JOB_BATCHES) and duplicate_pairs
-- (a migration nothing runs). The bridge must work without both.
-- One addition that is data, not schema: the image_statuses rows (end of file). init_db() leaves that
-- table empty and then no scan can store a photo (images.status_id is a foreign key to it), so any
-- Lumina that holds a photo has them; the bridge never reads them.
-- Column types are what SQLAlchemy emits: String -> VARCHAR, DateTime -> TIMESTAMP WITHOUT TIME ZONE,
-- Float -> DOUBLE PRECISION (image_tags.confidence). ORM defaults are client-side: no DEFAULTs here
-- except the two server defaults models.py declares (images.status_id, images.processing_flags).

CREATE TABLE jobs (
    id VARCHAR(255) PRIMARY KEY,
    catalog_id UUID,
    job_type VARCHAR(50) NOT NULL,
    status VARCHAR(50) NOT NULL,
    parameters JSONB,
    result JSONB,
    error TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE catalogs (
    id UUID PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    schema_name VARCHAR(255) NOT NULL UNIQUE,
    source_directories TEXT[] NOT NULL,
    organized_directory TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE image_statuses (
    id VARCHAR(50) PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    description TEXT,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE bursts (
    id UUID PRIMARY KEY,
    catalog_id UUID NOT NULL REFERENCES catalogs(id) ON DELETE CASCADE,
    image_count INTEGER NOT NULL,
    start_time TIMESTAMP,
    end_time TIMESTAMP,
    duration_seconds DOUBLE PRECISION,
    camera_make VARCHAR(255),
    camera_model VARCHAR(255),
    best_image_id VARCHAR,
    selection_method VARCHAR(50),
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE images (
    id VARCHAR PRIMARY KEY,
    catalog_id UUID NOT NULL REFERENCES catalogs(id) ON DELETE CASCADE,
    source_path TEXT NOT NULL,
    file_type VARCHAR NOT NULL,
    checksum TEXT NOT NULL,
    size_bytes BIGINT,
    dates JSONB NOT NULL,
    metadata JSONB NOT NULL,
    thumbnail_path TEXT,
    dhash TEXT,
    ahash TEXT,
    whash TEXT,
    geohash_4 VARCHAR(4),
    geohash_6 VARCHAR(6),
    geohash_8 VARCHAR(8),
    quality_score INTEGER,
    status_id VARCHAR(50) NOT NULL DEFAULT 'active' REFERENCES image_statuses(id) ON DELETE RESTRICT,
    processing_flags JSONB NOT NULL DEFAULT '{}',
    burst_id UUID REFERENCES bursts(id) ON DELETE SET NULL,
    burst_sequence INTEGER,
    description TEXT,
    edit_data JSONB,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP,
    CONSTRAINT unique_catalog_checksum UNIQUE (catalog_id, checksum)
);

CREATE TABLE tags (
    id SERIAL PRIMARY KEY,
    catalog_id UUID NOT NULL REFERENCES catalogs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    category TEXT,
    parent_id INTEGER REFERENCES tags(id) ON DELETE SET NULL,
    synonyms TEXT[],
    description TEXT,
    created_at TIMESTAMP NOT NULL,
    CONSTRAINT unique_catalog_tag UNIQUE (catalog_id, name)
);

CREATE TABLE image_tags (
    image_id VARCHAR NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    tag_id INTEGER NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
    confidence DOUBLE PRECISION,
    source VARCHAR,
    openclip_confidence DOUBLE PRECISION,
    ollama_confidence DOUBLE PRECISION,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (image_id, tag_id)
);

CREATE TABLE duplicate_groups (
    id SERIAL PRIMARY KEY,
    catalog_id UUID NOT NULL REFERENCES catalogs(id) ON DELETE CASCADE,
    primary_image_id VARCHAR NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    similarity_type VARCHAR NOT NULL,
    confidence INTEGER NOT NULL,
    reviewed BOOLEAN,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE duplicate_members (
    group_id INTEGER NOT NULL REFERENCES duplicate_groups(id) ON DELETE CASCADE,
    image_id VARCHAR NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    similarity_score INTEGER NOT NULL,
    PRIMARY KEY (group_id, image_id)
);

CREATE TABLE config (
    catalog_id UUID NOT NULL REFERENCES catalogs(id) ON DELETE CASCADE,
    key VARCHAR NOT NULL,
    value JSONB NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (catalog_id, key)
);

CREATE TABLE statistics (
    id SERIAL PRIMARY KEY,
    catalog_id UUID NOT NULL REFERENCES catalogs(id) ON DELETE CASCADE,
    timestamp TIMESTAMP NOT NULL,
    total_images INTEGER, total_videos INTEGER, total_size_bytes BIGINT,
    images_scanned INTEGER, images_hashed INTEGER, images_tagged INTEGER,
    duplicate_groups INTEGER, duplicate_images INTEGER, potential_savings_bytes BIGINT,
    high_quality_count INTEGER, medium_quality_count INTEGER, low_quality_count INTEGER,
    corrupted_count INTEGER, unsupported_count INTEGER,
    processing_time_seconds DOUBLE PRECISION, images_per_second DOUBLE PRECISION,
    no_date INTEGER, suspicious_dates INTEGER, problematic_files INTEGER
);

CREATE TABLE performance_snapshots (
    id SERIAL PRIMARY KEY,
    catalog_id UUID NOT NULL REFERENCES catalogs(id) ON DELETE CASCADE,
    timestamp TIMESTAMP NOT NULL,
    phase TEXT NOT NULL,
    files_processed INTEGER, files_total INTEGER, bytes_processed BIGINT,
    cpu_percent DOUBLE PRECISION, memory_mb DOUBLE PRECISION,
    disk_read_mb DOUBLE PRECISION, disk_write_mb DOUBLE PRECISION,
    elapsed_seconds DOUBLE PRECISION, rate_files_per_sec DOUBLE PRECISION,
    rate_mb_per_sec DOUBLE PRECISION, gpu_utilization DOUBLE PRECISION, gpu_memory_mb DOUBLE PRECISION
);

-- The rows of Lumina's migrations/add_image_status_system.sql (see the header).
INSERT INTO image_statuses (id, name, description, created_at) VALUES
    ('active', 'Active', 'Normal visible image', NOW()),
    ('rejected', 'Rejected', 'Rejected from burst/duplicate review', NOW()),
    ('archived', 'Archived', 'Manually archived by user', NOW()),
    ('flagged', 'Flagged', 'Flagged for review or special attention', NOW());

-- images.clip_embedding vector(768) (Lumina's CLIP search), where the server has pgvector: Debian's
-- PostgreSQL does not ship it, and the bridge never reads the column. The type lives in public, so
-- each test's own schema can use it.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
        CREATE EXTENSION IF NOT EXISTS vector SCHEMA public;
        ALTER TABLE images ADD COLUMN clip_embedding public.vector(768);
    END IF;
EXCEPTION WHEN insufficient_privilege OR invalid_schema_name OR duplicate_object OR undefined_object THEN
    RAISE NOTICE 'images.clip_embedding left out: %', SQLERRM;
END
$$;
