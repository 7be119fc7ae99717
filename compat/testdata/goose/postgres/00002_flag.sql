-- +goose Up
ALTER TABLE goose_items ADD COLUMN flag double precision NOT NULL DEFAULT random();
INSERT INTO goose_items (v, note) VALUES (-1, md5(random()::text)), (-2, md5(random()::text));

-- +goose Down
DELETE FROM goose_items WHERE v < 0;
ALTER TABLE goose_items DROP COLUMN flag;
