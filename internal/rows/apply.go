package rows

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/tandemdb/tandem/engine"
	"github.com/tandemdb/tandem/internal/value"
)

// Change makes one row of a table equal a source's: Row is the whole row
// in canonical values, nil to delete the row with Key.
type Change struct {
	Key, Row []any
}

// Apply makes each change's row in tx's database (of engine e) equal its
// Row, as Write does, and converges where writing the rows one by one in
// their order would not: a unique value that moved from one row of the
// batch to another, two rows that swapped values, a cycle. A write refused
// for a constraint (engine.Constraint) is tried again after the others;
// writes that still refuse each other are made after the target's rows of
// their keys are deleted (which frees the values those rows held).
//
// It returns, by index, the changes that still could not be made and why
// (a value held by a row outside the batch, a foreign key): everything
// else is written. A failure of the database itself ends Apply with its
// error; then the transaction holds some of the changes, and the caller
// rolls it back. Apply uses savepoints inside tx.
func Apply(ctx context.Context, e engine.Engine, tx engine.Execer, td *Def, changes []Change) (refused map[int]error, err error) {
	deletes := make([]bool, len(changes))
	for i, ch := range changes {
		deletes[i] = ch.Row == nil
	}
	return Converge(ctx, tx, e.Constraint, deletes, func(i int, del bool) error {
		row := changes[i].Row
		if del {
			row = nil
		}
		return Write(ctx, e, tx, td, changes[i].Key, row)
	})
}

// Converge is Apply for writes made by a caller: write(i, false) makes
// change i (a delete where deletes[i]), write(i, true) deletes the target's
// row of change i's key; constraint tells a constraint violation from a
// failure of the database.
func Converge(ctx context.Context, tx engine.Execer, constraint func(error) bool, deletes []bool, write func(i int, del bool) error) (refused map[int]error, err error) {
	if len(deletes) == 0 {
		return nil, nil
	}
	// The usual case: every change writes at once. Deletes first: they
	// free values and never take one.
	if _, err := tx.ExecContext(ctx, "SAVEPOINT tandem_batch"); err != nil {
		return nil, fmt.Errorf("savepoint: %w", err)
	}
	order := make([]int, 0, len(deletes))
	for i, del := range deletes {
		if del {
			order = append(order, i)
		}
	}
	for i, del := range deletes {
		if !del {
			order = append(order, i)
		}
	}
	var first error
	for _, i := range order {
		if first = write(i, false); first != nil {
			break
		}
	}
	if first == nil {
		return nil, release(ctx, tx, "tandem_batch")
	}
	if !constraint(first) {
		return nil, first
	}
	// Undo the batch (on PostgreSQL the failed statement ended the
	// transaction until then) and write it row by row, each in a
	// savepoint, retrying refused rows while any write succeeds.
	if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT tandem_batch"); err != nil {
		return nil, fmt.Errorf("roll back to savepoint: %w", err)
	}
	refused = map[int]error{}
	pending := order
	try := func() error {
		for {
			var next []int
			for _, i := range pending {
				err := careful(ctx, tx, func() error { return write(i, false) })
				switch {
				case err == nil:
					delete(refused, i)
				case constraint(err):
					refused[i] = err
					next = append(next, i)
				default:
					return err
				}
			}
			progress := len(next) < len(pending)
			pending = next
			if len(pending) == 0 || !progress {
				return nil
			}
		}
	}
	if err := try(); err != nil {
		return nil, err
	}
	// Rows that refuse each other (a swap, a cycle): delete the target's
	// rows of their keys, then write them again. If some still cannot be
	// written, undo that and try again without them (their rows stay as
	// they were), until every write left succeeds.
	for stuck := pending; len(stuck) > 0; {
		if _, err := tx.ExecContext(ctx, "SAVEPOINT tandem_stuck"); err != nil {
			return nil, fmt.Errorf("savepoint: %w", err)
		}
		for _, i := range stuck {
			if err := careful(ctx, tx, func() error { return write(i, true) }); err != nil && !constraint(err) {
				return nil, err
			}
		}
		pending = stuck
		if err := try(); err != nil {
			return nil, err
		}
		if len(pending) == 0 {
			if err := release(ctx, tx, "tandem_stuck"); err != nil {
				return nil, err
			}
			break
		}
		if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT tandem_stuck"); err != nil {
			return nil, fmt.Errorf("roll back to savepoint: %w", err)
		}
		if err := release(ctx, tx, "tandem_stuck"); err != nil {
			return nil, err
		}
		// The writes this round made are undone: the next round tries
		// them again, without the refused ones (which stay in refused).
		var next []int
		for _, i := range stuck {
			if !slices.Contains(pending, i) {
				next = append(next, i)
			}
		}
		stuck = next
	}
	if err := release(ctx, tx, "tandem_batch"); err != nil {
		return nil, err
	}
	if len(refused) == 0 {
		return nil, nil
	}
	return refused, nil
}

// careful runs write in a savepoint of its own, undone if it fails.
func careful(ctx context.Context, tx engine.Execer, write func() error) error {
	if _, err := tx.ExecContext(ctx, "SAVEPOINT tandem_row"); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	if werr := write(); werr != nil {
		if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT tandem_row"); err != nil {
			return errors.Join(werr, fmt.Errorf("roll back to savepoint: %w", err))
		}
		return errors.Join(werr, release(ctx, tx, "tandem_row"))
	}
	return release(ctx, tx, "tandem_row")
}

func release(ctx context.Context, tx engine.Execer, name string) error {
	if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT "+name); err != nil {
		return fmt.Errorf("release savepoint: %w", err)
	}
	return nil
}

// RefusedError describes the changes Apply could not make.
func RefusedError(td *Def, changes []Change, refused map[int]error) error {
	var errs []error
	for i := range changes {
		if err, ok := refused[i]; ok {
			errs = append(errs, fmt.Errorf("%s %s: %w", td.T.Name, value.EncodeKey(changes[i].Key), err))
		}
	}
	return errors.Join(errs...)
}
