package soak

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/tandemdb/tandem"
)

// statusWait bounds each Status call of settle.
const statusWait = 5 * time.Second

// settle opens a cluster on cfg, as any process would, and polls its
// status until every datasource is in sync with nothing behind, nothing in
// doubt and no conflict, and no intent or missed-key record is left in any
// database (read directly), or until within has passed. It returns how
// long that took, or an error describing what was left. A cluster whose
// status shows unresolved conflicts and has not changed for stuckAfter
// is given up at once: conflicts wait for an operator.
func settle(ctx context.Context, cfg *tandem.Config, ds []*datasource, within time.Duration, logger *slog.Logger) (time.Duration, error) {
	const stuckAfter = 5 * time.Second
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	c, err := tandem.Open(ctx, cfg, tandem.WithLogger(logger))
	if err != nil {
		return 0, fmt.Errorf("open: %w", err)
	}
	defer c.Close()
	var last string
	var same time.Time // since when last has not changed
	for {
		// Status waits for the databases; a hang is reported, not waited out.
		sctx, scancel := context.WithTimeout(ctx, statusWait)
		asked := time.Now()
		st, err := c.Status(sctx)
		hung := sctx.Err() == context.DeadlineExceeded
		scancel()
		switch {
		case err == nil && hung:
			last = fmt.Sprintf("Status took %v (it waits for the databases): %s", time.Since(asked).Round(time.Millisecond), describeStatus(st))
		case err != nil && ctx.Err() == nil:
			last = "status: " + err.Error()
		case err != nil:
			// The deadline: keep what the last answer said.
		case !st.Healthy():
			now := describeStatus(st)
			if now != last {
				last, same = now, time.Now()
			} else if st.Conflicts > 0 && time.Since(same) > stuckAfter {
				return time.Since(start), fmt.Errorf("not settled: stuck for %v with unresolved conflicts (they wait for `tandem resolve`): %s", stuckAfter, last)
			}
		default:
			last = ""
			for _, d := range ds {
				pending, missed, err := d.bookkeeping(ctx)
				if err != nil {
					last += err.Error() + "; "
				} else if pending > 0 || missed > 0 {
					last += fmt.Sprintf("%s holds %d intent and %d missed-key records; ", d.name, pending, missed)
				}
			}
			if last == "" {
				return time.Since(start), nil
			}
		}
		select {
		case <-ctx.Done():
			return time.Since(start), fmt.Errorf("not settled within %v: %s", within, strings.TrimSuffix(last, "; "))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// describeStatus renders what keeps a cluster from being healthy.
func describeStatus(st *tandem.Status) string {
	var parts []string
	if st.Primary == "" {
		parts = append(parts, "no primary ("+st.WriteError+")")
	}
	if st.Conflicts > 0 {
		parts = append(parts, fmt.Sprintf("%d unresolved conflicts", st.Conflicts))
	}
	if !st.StructureMatch {
		parts = append(parts, "structures differ")
	}
	for _, n := range st.Nodes {
		if n.State == tandem.StateInSync && n.InDoubt == 0 {
			continue
		}
		p := fmt.Sprintf("%s %s", n.Name, n.State)
		if n.Behind > 0 {
			p += fmt.Sprintf(", %d behind", n.Behind)
		}
		if n.InDoubt > 0 {
			p += fmt.Sprintf(", %d in doubt", n.InDoubt)
		}
		if n.Outdated != "" {
			p += ", outdated: " + n.Outdated
		}
		if n.Error != "" {
			p += ": " + n.Error
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ")
}
