-- +goose Up
CREATE TABLE goose_items (id INTEGER PRIMARY KEY AUTOINCREMENT, v INTEGER NOT NULL UNIQUE, note TEXT);

-- +goose Down
DROP TABLE goose_items;
