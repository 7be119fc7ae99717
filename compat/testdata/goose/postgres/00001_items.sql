-- +goose Up
CREATE TABLE goose_items (id bigserial PRIMARY KEY, v bigint NOT NULL UNIQUE, note text);

-- +goose Down
DROP TABLE goose_items;
