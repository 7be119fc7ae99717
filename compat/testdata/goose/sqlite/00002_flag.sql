-- +goose Up
ALTER TABLE goose_items ADD COLUMN flag INTEGER NOT NULL DEFAULT 0;
INSERT INTO goose_items (v, note, flag) VALUES (-1, hex(randomblob(8)), 1), (-2, hex(randomblob(8)), 1);

-- +goose Down
DELETE FROM goose_items WHERE v < 0;
ALTER TABLE goose_items DROP COLUMN flag;
