package prom_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tandemdb/tandem/internal/testcluster"
	"github.com/tandemdb/tandem/prom"
)

type item struct {
	ID  int64 `tandem:"id,pk"`
	Val string
}

// The collector, registered in an application's registry, gives the
// samples WritePrometheus writes, and passes client_golang's linter.
func TestCollectorMatchesWritePrometheus(t *testing.T) {
	c, _ := testcluster.New(t)
	ctx := context.Background()
	if err := c.Migrate(ctx, &item{}); err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		if err := c.Save(ctx, &item{ID: int64(i), Val: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(prom.NewCollector(c))
	problems, err := testutil.GatherAndLint(reg)
	if err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
	var want strings.Builder
	if err := c.WritePrometheus(ctx, &want); err != nil {
		t.Fatal(err)
	}
	// Nothing wrote between the two: the same samples, in the registry's
	// order (testutil sorts both).
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want.String())); err != nil {
		t.Errorf("the collector and WritePrometheus differ: %v", err)
	}
	if n := testutil.CollectAndCount(prom.NewCollector(c), "tandem_writes_total"); n != 2 {
		t.Errorf("tandem_writes_total: %d series, want one per datasource", n)
	}
	c.Close()
	if n := testutil.CollectAndCount(prom.NewCollector(c)); n != 0 {
		t.Errorf("a closed cluster: %d metrics, want none", n)
	}
}
