package tandem_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/testcluster"
)

// promSample is one line of the text format: name{labels} value.
var promSample = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*)?\})? (\S+)$`)

// promParse checks text against the Prometheus text exposition format
// (0.0.4), as tandem writes it: every line a "# HELP name text", a
// "# TYPE name counter|gauge" or a sample "name{labels} value" whose value
// parses as a float; each metric's HELP then TYPE before its samples, its
// samples together, counters named *_total. It returns the samples, keyed
// by name and labels as written (`tandem_primary{node="foo"}`), and what
// is wrong.
func promParse(text string) (samples map[string]float64, problems []string) {
	samples = map[string]float64{}
	help, typ := map[string]bool{}, map[string]string{}
	done := map[string]bool{} // metrics whose samples are over
	current := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for i := 1; sc.Scan(); i++ {
		line := sc.Text()
		fail := func(why string) { problems = append(problems, fmt.Sprintf("line %d %q: %s", i, line, why)) }
		switch {
		case strings.HasPrefix(line, "# HELP "):
			f := strings.SplitN(strings.TrimPrefix(line, "# HELP "), " ", 2)
			if len(f) != 2 || f[1] == "" {
				fail("HELP without a text")
				continue
			}
			if help[f[0]] {
				fail("second HELP")
			}
			if current != "" && current != f[0] {
				done[current] = true
			}
			current = f[0]
			help[f[0]] = true
		case strings.HasPrefix(line, "# TYPE "):
			f := strings.Fields(strings.TrimPrefix(line, "# TYPE "))
			switch {
			case len(f) != 2 || (f[1] != "counter" && f[1] != "gauge" && f[1] != "histogram"):
				fail("TYPE is not counter, gauge or histogram")
			case !help[f[0]] || f[0] != current:
				fail("TYPE not right after its HELP")
			case typ[f[0]] != "":
				fail("second TYPE")
			default:
				typ[f[0]] = f[1]
				if f[1] == "counter" && !strings.HasSuffix(f[0], "_total") {
					fail("a counter not named *_total")
				}
			}
		case strings.HasPrefix(line, "#"):
			fail("a comment tandem does not write")
		default:
			m := promSample.FindStringSubmatch(line)
			if m == nil {
				fail("not a sample line name{labels} value")
				continue
			}
			name := m[1]
			if typ[current] == "histogram" {
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if base, ok := strings.CutSuffix(name, suffix); ok && base == current {
						name = base
					}
				}
			}
			switch {
			case !help[name] || typ[name] == "":
				fail("sample before its HELP and TYPE")
			case name != current || done[name]:
				fail("samples of a metric are not together")
			}
			v, err := strconv.ParseFloat(m[3], 64)
			if err != nil {
				fail(err.Error())
			}
			key := m[1] + m[2]
			if _, dup := samples[key]; dup {
				fail("duplicate sample")
			}
			samples[key] = v
		}
	}
	if !strings.HasSuffix(text, "\n") {
		problems = append(problems, "the output does not end with a line feed")
	}
	for name := range help {
		if typ[name] == "" {
			problems = append(problems, fmt.Sprintf("metric %s has HELP but no TYPE", name))
		}
	}
	return samples, problems
}

// promMetrics returns c's metrics, parsed and checked.
func promMetrics(t *testing.T, c *tandem.Cluster) (map[string]float64, string) {
	t.Helper()
	var b strings.Builder
	if err := c.WritePrometheus(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	samples, problems := promParse(b.String())
	for _, p := range problems {
		t.Errorf("WritePrometheus: %s", p)
	}
	return samples, b.String()
}

// promExpect checks the samples named in want.
func promExpect(t *testing.T, got map[string]float64, text string, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present: %v), want %v; output:\n%s", k, g, ok, v, text)
		}
	}
}

func TestPromParseRefusesMalformedOutput(t *testing.T) {
	for _, bad := range []string{
		"tandem_x 1\n", // no HELP, TYPE
		"# HELP tandem_x x\n# TYPE tandem_x gauge\ntandem_x{node=\"a\"} one\n",
		"# HELP tandem_x x\n# TYPE tandem_x gauge\ntandem_x{node=a} 1\n",
		"# HELP tandem_x x\n# TYPE tandem_x counter\ntandem_x 1\n", // a counter not *_total
		"# HELP tandem_x x\n# TYPE tandem_x gauge\ntandem_x 1\n# HELP tandem_y y\n# TYPE tandem_y gauge\ntandem_y 1\ntandem_x 2\n",
		"# TYPE tandem_x gauge\n# HELP tandem_x x\ntandem_x 1\n",
		"# HELP tandem_x x\n# TYPE tandem_x gauge\ntandem_x 1",
	} {
		if _, problems := promParse(bad); len(problems) == 0 {
			t.Errorf("promParse accepted %q", bad)
		}
	}
	good := "# HELP tandem_x a \\\\ b\n# TYPE tandem_x gauge\ntandem_x{node=\"a\\\"b\\\\c\\n\"} 1.5e3\ntandem_x{node=\"b\"} -2\n"
	if got, problems := promParse(good); len(problems) > 0 || got[`tandem_x{node="a\"b\\c\n"}`] != 1500 || got[`tandem_x{node="b"}`] != -2 {
		t.Errorf("promParse(%q) = %v, %v", good, got, problems)
	}
}

// TestMetricsCountEachWrite: every Save and Delete counts one on each
// datasource, grouped or not; a Tx counts one however many rows it wrote;
// writes that wrote nothing count nothing.
func TestMetricsCountEachWrite(t *testing.T) {
	c, _ := testcluster.New(t, faultQuietLogs())
	ctx := context.Background()
	if err := c.Migrate(ctx, &FailoverItem{}); err != nil {
		t.Fatal(err)
	}
	want := int64(0)
	check := func(when string) {
		t.Helper()
		m := c.Metrics()
		for _, name := range []string{"foo", "bar"} {
			got := m.Nodes[name]
			if got.Writes != want || got.WriteFailures != 0 || got.Skipped != 0 || got.CaughtUpRows != 0 {
				t.Errorf("%s: %s has %+v, want Writes %d and nothing else", when, name, got, want)
			}
		}
	}
	check("after Open and Migrate")

	const saves = 10
	for i := range saves {
		if err := c.Save(ctx, &FailoverItem{ID: int64(i + 1), Val: "one by one"}); err != nil {
			t.Fatal(err)
		}
	}
	want += saves
	check(fmt.Sprintf("%d saves one after the other", saves))

	// Concurrent saves are committed in groups: each member counts.
	const writers, each = 8, 25
	g0, m0 := tandem.GroupStats(c)
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				errs <- c.Save(ctx, &FailoverItem{ID: int64(1000 + w*each + i), Val: "concurrent"})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	g1, m1 := tandem.GroupStats(c)
	t.Logf("%d concurrent saves were committed in %d groups", m1-m0, g1-g0)
	want += writers * each
	check(fmt.Sprintf("%d concurrent saves", writers*each))

	err := c.Tx(ctx, func(tx *tandem.Tx) error {
		for i := range 3 {
			if err := tx.Save(ctx, &FailoverItem{ID: int64(100 + i), Val: "in a tx"}); err != nil {
				return err
			}
		}
		return tx.Delete(ctx, &FailoverItem{ID: 1})
	})
	if err != nil {
		t.Fatal(err)
	}
	want++
	check("a Tx of 3 saves and a delete")

	if err := c.Delete(ctx, &FailoverItem{ID: 2}); err != nil {
		t.Fatal(err)
	}
	want++
	check("a delete")

	// Writes that write nothing count nothing.
	if err := c.Delete(ctx, &FailoverItem{ID: 424242}); err != nil {
		t.Fatal(err)
	}
	if err := c.Tx(ctx, func(tx *tandem.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	refuse := errors.New("refused")
	if err := c.Tx(ctx, func(tx *tandem.Tx) error {
		if err := tx.Save(ctx, &FailoverItem{ID: 500, Val: "rolled back"}); err != nil {
			return err
		}
		return refuse
	}); !errors.Is(err, refuse) {
		t.Fatalf("Tx returned %v, want %v", err, refuse)
	}
	if err := c.Save(ctx, &FailoverItem{ID: 501, Val: strings.Repeat("x", 41)}); err == nil {
		t.Fatal("a value longer than its size was saved")
	}
	check("a delete of a missing row, an empty Tx, a Tx that returned an error, a value refused")

	got, text := promMetrics(t, c)
	promExpect(t, got, text, map[string]float64{
		`tandem_writes_total{node="foo"}`:         float64(want),
		`tandem_writes_total{node="bar"}`:         float64(want),
		`tandem_write_failures_total{node="foo"}`: 0,
		`tandem_write_failures_total{node="bar"}`: 0,
		`tandem_writes_skipped_total{node="foo"}`: 0,
		`tandem_writes_skipped_total{node="bar"}`: 0,
		`tandem_catchup_rows_total{node="foo"}`:   0,
		`tandem_catchup_rows_total{node="bar"}`:   0,
		`tandem_node_up{node="foo"}`:              1,
		`tandem_node_up{node="bar"}`:              1,
		`tandem_node_in_sync{node="foo"}`:         1,
		`tandem_node_in_sync{node="bar"}`:         1,
		`tandem_rows_behind{node="foo"}`:          0,
		`tandem_rows_behind{node="bar"}`:          0,
		`tandem_copy_refused{node="foo"}`:         0,
		`tandem_copy_refused{node="bar"}`:         0,
		`tandem_conflicts_unresolved`:             0,
		`tandem_primary{node="foo"}`:              1,
		`tandem_primary{node="bar"}`:              0,
	})
	// 15 buckets, a sum and a count per histogram: one of the cluster's,
	// two per node.
	if len(got) != 9*2+1+17*(1+2*2) {
		t.Errorf("%d samples, want 104 (9 metrics of 2 nodes, 1 of the cluster, 5 histograms of 17):\n%s", len(got), text)
	}
	if n := got["tandem_write_seconds_count"]; n < float64(want) {
		t.Errorf("tandem_write_seconds_count = %v, want at least the %d writes", n, want)
	}
	for _, h := range []string{"tandem_write_seconds", `tandem_commit_seconds{node="foo"}`, `tandem_commit_seconds{node="bar"}`} {
		name, labels, _ := strings.Cut(h, "{")
		if labels != "" {
			labels = strings.TrimSuffix(labels, "}") + ","
		}
		count := got[name+"_count"+strings.TrimPrefix(h, name)]
		if count == 0 {
			t.Errorf("%s: no observation", h)
		}
		prev := 0.0
		for _, le := range []string{"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"} {
			v, ok := got[name+"_bucket{"+labels+`le="`+le+`"}`]
			if !ok || v < prev {
				t.Errorf("%s bucket le=%s = %v (present %v), below the bucket before it (%v)", h, le, v, ok, prev)
			}
			prev = v
		}
		if prev != count {
			t.Errorf("%s: the +Inf bucket holds %v, the count is %v", h, prev, count)
		}
	}
	// The order is fixed: by metric, then node in configured order.
	var names []string
	for _, line := range strings.Split(text, "\n") {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			names = append(names, strings.Fields(name)[0])
		}
	}
	order := "tandem_writes_total tandem_write_failures_total tandem_writes_skipped_total tandem_catchup_rows_total tandem_node_up tandem_node_in_sync tandem_rows_behind tandem_copy_refused tandem_conflicts_unresolved tandem_primary tandem_write_seconds tandem_commit_seconds tandem_catchup_batch_seconds"
	if strings.Join(names, " ") != order {
		t.Errorf("metrics in order %v, want %s", names, order)
	}
	if i, j := strings.Index(text, `tandem_writes_total{node="foo"}`), strings.Index(text, `tandem_writes_total{node="bar"}`); i < 0 || j < i {
		t.Errorf("foo's sample is not before bar's:\n%s", text)
	}
}

func TestWritePrometheusAfterCloseFails(t *testing.T) {
	c, _ := testcluster.New(t, faultQuietLogs())
	c.Close()
	var b strings.Builder
	if err := c.WritePrometheus(context.Background(), &b); !errors.Is(err, tandem.ErrClosed) {
		t.Errorf("WritePrometheus after Close returned %v, want ErrClosed", err)
	}
	if b.Len() != 0 {
		t.Errorf("WritePrometheus after Close wrote %q", b.String())
	}
}

// Prometheus's own linter accepts WritePrometheus's output
// (`promtool check metrics`, from Debian's prometheus package).
func TestWritePrometheusPassesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("TANDEM_FAIL_ON_SKIP") == "1" {
			t.Fatalf("promtool not found: apt-get install prometheus (TANDEM_FAIL_ON_SKIP=1)")
		}
		t.Skip("promtool not found: apt-get install prometheus")
	}
	c, _ := testcluster.New(t, faultQuietLogs())
	ctx := context.Background()
	if err := c.Migrate(ctx, &FailoverItem{}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := c.Save(ctx, &FailoverItem{ID: int64(i + 1), Val: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	var b strings.Builder
	if err := c.WritePrometheus(ctx, &b); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s\nof:\n%s", err, out, b.String())
	}
}
