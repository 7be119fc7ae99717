package soak

import (
	"slices"
	"testing"
	"time"
)

var testPlan = Plan{Datasources: []string{"foo", "bar"}, Writers: 3, ArbiterMembers: []string{"m0", "m1", "m2"}, Duration: 5 * time.Second, PerSecond: 1.5}

func TestDrawGivesTheSameScheduleForTheSameSeed(t *testing.T) {
	kinds := KindsFor("sqlite", "witness")
	for seed := range uint64(50) {
		a, b := Draw(seed, kinds, testPlan), Draw(seed, kinds, testPlan)
		if !slices.Equal(a, b) {
			t.Fatalf("seed %d: two draws differ:\n%v\n%v", seed, a, b)
		}
		if len(a) == 0 {
			t.Fatalf("seed %d: no fault drawn", seed)
		}
	}
	if slices.Equal(Draw(1, kinds, testPlan), Draw(2, kinds, testPlan)) {
		t.Error("seeds 1 and 2 draw the same schedule")
	}
}

func TestDrawHitsThePrimaryAsOftenAsTheSecondary(t *testing.T) {
	hits := map[string]int{}
	for seed := range uint64(2000) {
		for _, f := range Draw(seed, KindsFor("sqlite", "witness"), testPlan) {
			if f.Kind == "lock" || f.Kind == "lost-mount" {
				hits[f.Target]++
			}
		}
	}
	total := hits["foo"] + hits["bar"]
	if share := float64(hits["foo"]) / float64(total); share < 0.47 || share > 0.53 {
		t.Errorf("the primary took %.3f of %d faults on a datasource (foo %d, bar %d), want about half", share, total, hits["foo"], hits["bar"])
	}
}

func TestDrawKeepsEveryFaultWithinThePhaseItsKindAndItsTargets(t *testing.T) {
	for _, engine := range Engines {
		kinds := map[string]Kind{}
		for _, k := range KindsFor(engine, "etcd") {
			kinds[k.Name] = k
		}
		drawn := map[string]int{}
		for seed := range uint64(500) {
			faults := Draw(seed, KindsFor(engine, "etcd"), testPlan)
			if !slices.IsSortedFunc(faults, func(a, b Fault) int { return int(a.At - b.At) }) {
				t.Errorf("%s seed %d: faults not in order of start: %v", engine, seed, faults)
			}
			for _, f := range faults {
				k, ok := kinds[f.Kind]
				switch {
				case !ok:
					t.Fatalf("%s seed %d: kind %q does not apply to %s", engine, seed, f.Kind, engine)
				case f.At < 0 || f.At >= testPlan.Duration:
					t.Errorf("%s seed %d: %v starts outside the fault phase", engine, seed, f)
				case f.Hold < k.MinHold || f.Hold >= k.MaxHold:
					t.Errorf("%s seed %d: %v held outside %v..%v", engine, seed, f, k.MinHold, k.MaxHold)
				case k.Target == OnDatasource && !slices.Contains(testPlan.Datasources, f.Target):
					t.Errorf("%s seed %d: %v targets no datasource", engine, seed, f)
				case k.Target == OnWriter && !slices.Contains([]string{"w1", "w2", "w3"}, f.Target):
					t.Errorf("%s seed %d: %v targets no writer", engine, seed, f)
				case k.Target == OnArbiter && !slices.Contains(testPlan.ArbiterMembers, f.Target):
					t.Errorf("%s seed %d: %v targets no arbiter member", engine, seed, f)
				}
				drawn[f.Kind]++
			}
		}
		for name := range kinds {
			if drawn[name] == 0 {
				t.Errorf("%s: kind %s never drawn in 500 schedules", engine, name)
			}
		}
	}
}

func TestKindsForEachEngine(t *testing.T) {
	names := func(engine, arbiter string) []string {
		var out []string
		for _, k := range KindsFor(engine, arbiter) {
			out = append(out, k.Name)
		}
		return out
	}
	for _, c := range []struct {
		engine, arbiter string
		want            []string
	}{
		{"sqlite", "witness", []string{"lock", "kill-writer", "crash-commit", "stop-writer", "lost-mount"}},
		{"sqlite", "etcd", []string{"lock", "kill-writer", "crash-commit", "stop-writer", "lost-mount", "kill-arbiter", "isolate-arbiter"}},
		{"postgres", "none", []string{"lock", "kill-writer", "crash-commit", "stop-writer", "kill-server", "pause-server", "cut"}},
		{"mariadb", "witness", []string{"lock", "kill-writer", "crash-commit", "stop-writer", "kill-server", "pause-server", "cut"}},
		{"postgres", "etcd", []string{"lock", "kill-writer", "crash-commit", "stop-writer", "kill-server", "pause-server", "cut", "kill-arbiter", "isolate-arbiter"}},
	} {
		if got := names(c.engine, c.arbiter); !slices.Equal(got, c.want) {
			t.Errorf("%s with %s: kinds %v, want %v", c.engine, c.arbiter, got, c.want)
		}
	}
	for _, k := range AllKinds() {
		if k.Inject == nil || k.Weight <= 0 || k.MaxHold <= k.MinHold {
			t.Errorf("kind %s: incomplete (inject set %v, weight %d, hold %v..%v)", k.Name, k.Inject != nil, k.Weight, k.MinHold, k.MaxHold)
		}
	}
}

func TestTally(t *testing.T) {
	faults := []Fault{{Kind: "lock"}, {Kind: "kill-writer"}, {Kind: "lock"}}
	if got, want := tally(faults, KindsFor("sqlite", "witness")), "lock×2 kill-writer×1"; got != want {
		t.Errorf("tally %q, want %q", got, want)
	}
}
