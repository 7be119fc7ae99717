CREATE TABLE authors (
  id   bigserial PRIMARY KEY,
  name text NOT NULL,
  bio  text
);

CREATE TABLE sqlc_sets (
  id bigserial PRIMARY KEY,
  v  bigint NOT NULL UNIQUE
);
