-- The embedded catalog: Lumina's tables (lumina/db/models.py) in SQLite types, plus the
-- plugin's own state. Differences from Lumina, on purpose:
--   * images.id is NOT the file's SHA-256: one row per file path, so byte-identical
--     copies (the duplicates people most want found) are kept; the SHA-256 is in checksum.
--   * images.index_id: the int64 key of the image in the hash index.
--   * hashes carry hash_version; phash is stored too; geometry: the geometry words (8 uint64,
--     big-endian, 64 bytes; NULL in rows from before them, catalog/words.py).
--   * duplicate_pairs.geo: the pair's packed geometric verdict (0 = none), the same on
--     each of the pair's rows.
-- A column added after a catalog was made is added on open (catalog/sqlite_schema.py).
PRAGMA foreign_keys = ON;

CREATE TABLE IF NOT EXISTS catalogs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    schema_name TEXT,
    source_directories TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,
    catalog_id TEXT NOT NULL REFERENCES catalogs(id) ON DELETE CASCADE,
    index_id INTEGER NOT NULL UNIQUE,
    source_path TEXT NOT NULL,
    file_type TEXT NOT NULL DEFAULT 'image',
    checksum TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    dates TEXT NOT NULL DEFAULT '{}',
    metadata TEXT NOT NULL DEFAULT '{}',
    ahash TEXT, dhash TEXT, phash TEXT, whash TEXT,
    hash_version INTEGER,
    quality_score INTEGER,
    status_id TEXT NOT NULL DEFAULT 'active',
    burst_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    geometry BLOB,  -- added last, where ALTER TABLE puts it in older catalogs
    UNIQUE (catalog_id, source_path)
);
CREATE INDEX IF NOT EXISTS idx_images_checksum ON images(catalog_id, checksum);

CREATE TABLE IF NOT EXISTS tags (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    catalog_id TEXT NOT NULL REFERENCES catalogs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    category TEXT,
    parent_id INTEGER REFERENCES tags(id) ON DELETE SET NULL,
    synonyms TEXT,
    description TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (catalog_id, name)
);

CREATE TABLE IF NOT EXISTS image_tags (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    tag_id INTEGER NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
    confidence REAL DEFAULT 1.0,
    source TEXT DEFAULT 'manual',
    openclip_confidence REAL,
    ollama_confidence REAL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (image_id, tag_id)
);
CREATE INDEX IF NOT EXISTS idx_image_tags_tag ON image_tags(tag_id);

CREATE TABLE IF NOT EXISTS duplicate_groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    catalog_id TEXT NOT NULL REFERENCES catalogs(id) ON DELETE CASCADE,
    primary_image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    similarity_type TEXT NOT NULL,
    confidence INTEGER NOT NULL,
    reviewed INTEGER DEFAULT 0,
    created_at TEXT NOT NULL,
    keeper_reason TEXT
);

CREATE TABLE IF NOT EXISTS duplicate_members (
    group_id INTEGER NOT NULL REFERENCES duplicate_groups(id) ON DELETE CASCADE,
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    similarity_score INTEGER NOT NULL,
    relation TEXT NOT NULL DEFAULT 'exact',  -- keeper, exact, derivative, raw+jpeg, edit, burst
    distance INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (group_id, image_id)
);

-- One row per (pair, hash) for every candidate pair; linked = within that hash's threshold.
CREATE TABLE IF NOT EXISTS duplicate_pairs (
    catalog_id TEXT NOT NULL REFERENCES catalogs(id) ON DELETE CASCADE,
    image_1 TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    image_2 TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    hash_type TEXT NOT NULL,
    distance INTEGER NOT NULL,
    compared_at TEXT,
    job_id TEXT,
    geo INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (catalog_id, image_1, image_2, hash_type),
    CHECK (image_1 < image_2)
);

-- The plugin's own: every run, and the row changes it made, so undo can reverse it.
CREATE TABLE IF NOT EXISTS dedup_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    catalog_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL DEFAULT 'running',
    changes INTEGER NOT NULL DEFAULT 0,
    report TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE IF NOT EXISTS dedup_undo (
    run_id INTEGER NOT NULL REFERENCES dedup_runs(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    table_name TEXT NOT NULL,
    op TEXT NOT NULL,          -- 'insert' (undo deletes it) or 'delete' (undo re-inserts it)
    row TEXT NOT NULL,         -- the row as JSON
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE IF NOT EXISTS dedup_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- What a person decided in the review: never flag a pair again, a confirmed pair, a chosen keeper.
CREATE TABLE IF NOT EXISTS dedup_decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    catalog_id TEXT NOT NULL,
    kind TEXT NOT NULL,            -- 'not-duplicate', 'duplicate' or 'keeper'
    image_1 TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    image_2 TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,  -- = image_1 for 'keeper'
    created_at TEXT NOT NULL,
    UNIQUE (catalog_id, kind, image_1, image_2)
);
