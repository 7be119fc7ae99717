package records

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/tandemdb/tandem/engine"
)

// Execer is a *sql.DB, *sql.Conn or *sql.Tx, or a wrapper of one.
type Execer = engine.Execer

// RecordMissed records, inside tx, each of in's keys as missed by every
// node named in missing (an upsert: a key missed twice is one record).
func (s Store) RecordMissed(ctx context.Context, tx Execer, in *Intent, missing []string) error {
	if len(missing) == 0 {
		return nil
	}
	q := s.e.Upsert(&Missed)
	for _, m := range missing {
		for i := range in.Len() {
			k := in.Key(i)
			if _, err := tx.ExecContext(ctx, q, m, k.Table, k.PK, in.At); err != nil {
				return err
			}
		}
	}
	return nil
}

// MissedKeys returns up to limit keys recorded as missed by any node named
// in missing, after the key after, in key order.
func (s Store) MissedKeys(ctx context.Context, q Querier, missing []string, after Key, limit int) ([]Key, error) {
	e := s.e
	args := []any{after.Table, after.Table, after.PK}
	in := s.inList(missing, len(args), &args)
	query := fmt.Sprintf("SELECT DISTINCT tbl, pk FROM %s WHERE (tbl > %s OR (tbl = %s AND pk > %s)) AND node IN (%s) ORDER BY tbl, pk%s",
		s.table(&Missed), e.Placeholder(1), e.Placeholder(2), e.Placeholder(3), in, e.LimitClause(limit, 0))
	return queryKeys(ctx, q, query, args...)
}

// queryKeys runs a query whose rows are a table and a key.
func queryKeys(ctx context.Context, q Querier, query string, args ...any) ([]Key, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Key
	for rows.Next() {
		var k Key
		if err := rows.Scan(&k.Table, &k.PK); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// HasMissed reports whether k is recorded as missed by any node named in
// missing.
func (s Store) HasMissed(ctx context.Context, q Querier, missing []string, k Key) (bool, error) {
	e := s.e
	args := []any{k.Table, k.PK}
	in := s.inList(missing, len(args), &args)
	var count int
	err := q.QueryRowContext(ctx, fmt.Sprintf("SELECT COUNT(*) FROM %s WHERE tbl = %s AND pk = %s AND node IN (%s)",
		s.table(&Missed), e.Placeholder(1), e.Placeholder(2), in), args...).Scan(&count)
	return count > 0, err
}

// HasAnyMissed reports whether any key is recorded as missed by any node
// named in missing (an index probe: it does not count them).
func (s Store) HasAnyMissed(ctx context.Context, q Querier, missing []string) (bool, error) {
	var args []any
	in := s.inList(missing, 0, &args)
	var one int
	err := q.QueryRowContext(ctx, fmt.Sprintf("SELECT 1 FROM %s WHERE node IN (%s)%s",
		s.table(&Missed), in, s.e.LimitClause(1, 0)), args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// DeleteMissed deletes the records of k as missed by any node named in
// missing.
func (s Store) DeleteMissed(ctx context.Context, tx Execer, missing []string, k Key) error {
	e := s.e
	args := []any{k.Table, k.PK}
	in := s.inList(missing, len(args), &args)
	_, err := tx.ExecContext(ctx, fmt.Sprintf("DELETE FROM %s WHERE tbl = %s AND pk = %s AND node IN (%s)",
		s.table(&Missed), e.Placeholder(1), e.Placeholder(2), in), args...)
	return err
}

// CountMissed counts the keys recorded as missed by the node called name.
func (s Store) CountMissed(ctx context.Context, q Querier, name string) (int64, error) {
	var count int64
	err := q.QueryRowContext(ctx, fmt.Sprintf("SELECT COUNT(*) FROM %s WHERE node = %s",
		s.table(&Missed), s.e.Placeholder(1)), name).Scan(&count)
	return count, err
}

// CountMissedByNode counts the keys recorded as missed, by the name of the
// node that missed them, into counts.
func (s Store) CountMissedByNode(ctx context.Context, q Querier, counts map[string]int64) error {
	return countBy(ctx, q, fmt.Sprintf("SELECT node, COUNT(*) FROM %s GROUP BY node", s.table(&Missed)), counts)
}

func countBy(ctx context.Context, q Querier, query string, into map[string]int64) error {
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			return err
		}
		into[k] += n
	}
	return rows.Err()
}

func queryStrings(ctx context.Context, q Querier, query string, args ...any) ([]string, error) {
	return engine.QueryStrings(ctx, q, query, args...)
}
