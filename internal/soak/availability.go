package soak

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// Availability is what writers saw while each kind of fault lasted: how
// often it was drawn, how many writes (inserts and transfers) overlapping
// it were refused, and the slowest acknowledged write overlapping it.
// Faults on a datasource are kept apart per datasource (lock@foo,
// lock@bar), and "none" is every write that overlapped no fault.
type Availability struct {
	keys         []string
	rows         map[string]*availRow
	onDatasource map[string]bool // kinds whose rows are per datasource
}

type availRow struct {
	drawn, injected int
	writes, refused int
	slowest         time.Duration
}

func newAvailability(kinds []Kind) *Availability {
	a := &Availability{rows: map[string]*availRow{}, onDatasource: map[string]bool{}}
	for _, k := range kinds {
		if k.Target == OnDatasource {
			a.onDatasource[k.Name] = true
			a.key(k.Name + "@foo")
			a.key(k.Name + "@bar")
		} else {
			a.key(k.Name)
		}
	}
	a.key("none")
	return a
}

func (a *Availability) key(k string) *availRow {
	r, ok := a.rows[k]
	if !ok {
		r = &availRow{}
		a.rows[k] = r
		a.keys = append(a.keys, k)
	}
	return r
}

// faultKey names a fault's row: its kind, and its datasource if it has one.
func (a *Availability) faultKey(f Fault) string {
	if a.onDatasource[f.Kind] {
		return f.Kind + "@" + f.Target
	}
	return f.Kind
}

func (a *Availability) add(res *Result) {
	for _, f := range res.Faults {
		a.key(a.faultKey(f)).drawn++
	}
	for _, w := range res.windows {
		a.key(a.faultKey(w.fault)).injected++
	}
	none := a.key("none")
	for _, op := range res.ops {
		if !op.write() {
			continue
		}
		seen := map[string]bool{}
		for _, w := range res.windows {
			if op.start.After(w.to) || op.end.Before(w.from) {
				continue
			}
			k := a.faultKey(w.fault)
			if seen[k] {
				continue
			}
			seen[k] = true
			a.rows[k].count(op)
		}
		if len(seen) == 0 {
			none.count(op)
		}
	}
}

func (r *availRow) count(op opRecord) {
	r.writes++
	if op.err != "" {
		r.refused++
	} else {
		r.slowest = max(r.slowest, op.end.Sub(op.start))
	}
}

func (a *Availability) write(w io.Writer) {
	fmt.Fprintln(w, "availability per fault kind (writes overlapping a fault while it lasted):")
	fmt.Fprintf(w, "  %-22s %6s %8s %8s %8s %11s\n", "fault", "drawn", "injected", "writes", "refused", "slowest_ms")
	keys := slices.Clone(a.keys)
	for _, k := range keys {
		r := a.rows[k]
		if r.drawn == 0 && k != "none" {
			continue
		}
		drawn, injected := fmt.Sprint(r.drawn), fmt.Sprint(r.injected)
		if k == "none" {
			drawn, injected = "-", "-"
		}
		fmt.Fprintf(w, "  %-22s %6s %8s %8d %8d %11d\n", k, drawn, injected, r.writes, r.refused, r.slowest.Milliseconds())
	}
}
