package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/tandemdb/tandem/arbiter"
	_ "github.com/tandemdb/tandem/arbiter/etcd"
	"github.com/tandemdb/tandem/internal/dbserver"
)

// open opens an etcd arbiter as a config would: fields as YAML decodes
// them, a list of endpoints as []any. It is closed when the test ends.
func open(t *testing.T, fields map[string]any) arbiter.Arbiter {
	t.Helper()
	a, err := tryOpen(t.TempDir(), fields)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func tryOpen(dir string, fields map[string]any) (arbiter.Arbiter, error) {
	opener, ok := arbiter.Lookup("etcd")
	if !ok {
		return nil, fmt.Errorf("no arbiter of kind etcd among %v", arbiter.Kinds())
	}
	return opener(arbiter.Options{Kind: "etcd", Fields: fields, Dir: dir})
}

// on returns the fields of an arbiter on endpoints and key, with the
// request timeout short enough for tests to wait it out.
func on(key string, endpoints ...string) map[string]any {
	eps := make([]any, len(endpoints))
	for i, e := range endpoints {
		eps[i] = e
	}
	return map[string]any{"endpoints": eps, "key": key, "request_timeout": "2s"}
}

// view returns the view of generation gen, primary primary.
func view(gen int64, primary string) arbiter.View {
	return arbiter.View{Generation: gen, Primary: primary, Ranking: []string{"foo", "bar"}}
}

func load(t *testing.T, a arbiter.Arbiter) (arbiter.View, bool) {
	t.Helper()
	v, ok, err := a.Load(context.Background())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return v, ok
}

func wantLoad(t *testing.T, a arbiter.Arbiter, want arbiter.View) {
	t.Helper()
	if v, ok := load(t, a); !ok || !v.Equal(want) {
		t.Fatalf("Load = %v, %v; want %v", v, ok, want)
	}
}

func swap(t *testing.T, a arbiter.Arbiter, prev int64, next arbiter.View) (arbiter.View, bool) {
	t.Helper()
	cur, swapped, err := a.Swap(context.Background(), prev, next)
	if err != nil {
		t.Fatalf("Swap(%d, %v): %v", prev, next, err)
	}
	return cur, swapped
}

// eventually retries try until it succeeds, and fails the test if it has
// not within d. It returns how long it took, and logs the first failure.
func eventually(t *testing.T, d time.Duration, what string, try func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for failed := 0; ; failed++ {
		err := try()
		if err == nil {
			if failed > 0 {
				t.Logf("%s: succeeded after %d failed attempts", what, failed)
			}
			return time.Since(start)
		}
		if failed == 0 {
			t.Logf("%s: first attempt failed after %v: %v", what, time.Since(start), err)
		}
		if time.Since(start) > d {
			t.Fatalf("%s: still failing after %v: %v", what, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestArbiterOnAHealthyCluster(t *testing.T) {
	c := dbserver.StartEtcd(t, 3)
	eps := c.Endpoints()

	t.Run("LoadOnAnEmptyKeyFindsNoView", func(t *testing.T) {
		a := open(t, on("/empty", eps...))
		if v, ok := load(t, a); ok {
			t.Fatalf("Load on an empty key = %v, true", v)
		}
	})

	t.Run("SwapFromZeroStoresTheFirstView", func(t *testing.T) {
		a := open(t, on("/first", eps...))
		first := arbiter.View{Generation: 1, Primary: "foo", Excluded: []string{"bar"}, Ranking: []string{"foo", "bar", "baz"}}
		if cur, swapped := swap(t, a, 0, first); !swapped || !cur.Equal(first) {
			t.Fatalf("Swap from 0 = %v, %v; want %v, true", cur, swapped, first)
		}
		wantLoad(t, a, first)
		// Another process reads what this one stored.
		wantLoad(t, open(t, on("/first", eps...)), first)
	})

	t.Run("SecondSwapFromZeroLosesAndReturnsTheWinner", func(t *testing.T) {
		a, b := open(t, on("/second", eps...)), open(t, on("/second", eps...))
		winner := view(1, "foo")
		swap(t, a, 0, winner)
		if cur, swapped := swap(t, b, 0, view(1, "bar")); swapped || !cur.Equal(winner) {
			t.Fatalf("second Swap from 0 = %v, %v; want %v, false", cur, swapped, winner)
		}
		wantLoad(t, b, winner)
	})

	t.Run("SwapFromAnOldGenerationLosesAndReturnsTheCurrentView", func(t *testing.T) {
		a := open(t, on("/old", eps...))
		swap(t, a, 0, view(1, "foo"))
		second := view(2, "bar")
		swap(t, a, 1, second)
		if cur, swapped := swap(t, a, 1, view(2, "baz")); swapped || !cur.Equal(second) {
			t.Fatalf("Swap from generation 1 over generation 2 = %v, %v; want %v, false", cur, swapped, second)
		}
		if cur, swapped := swap(t, a, 5, view(6, "baz")); swapped || !cur.Equal(second) {
			t.Fatalf("Swap from generation 5 over generation 2 = %v, %v; want %v, false", cur, swapped, second)
		}
	})

	t.Run("SwapFromAGenerationWhenNoneIsStoredLoses", func(t *testing.T) {
		a := open(t, on("/none", eps...))
		if cur, swapped := swap(t, a, 3, view(4, "foo")); swapped || cur.Generation != 0 {
			t.Fatalf("Swap from 3 on an empty key = %v, %v; want no view, false", cur, swapped)
		}
		if v, ok := load(t, a); ok {
			t.Fatalf("Load after a lost Swap = %v, true", v)
		}
	})

	t.Run("ConcurrentSwapsFromOneGenerationHaveOneWinner", func(t *testing.T) {
		// Eight processes, each with its own client, race from the same
		// generation: from none stored, then from the winner's.
		const n = 8
		arbiters := make([]arbiter.Arbiter, n)
		for i := range arbiters {
			arbiters[i] = open(t, on("/race", eps...))
		}
		for prev := int64(0); prev < 3; prev++ {
			type result struct {
				cur     arbiter.View
				swapped bool
				err     error
			}
			results := make([]result, n)
			var wg sync.WaitGroup
			for i, a := range arbiters {
				wg.Go(func() {
					next := view(prev+1, fmt.Sprintf("p%d", i))
					cur, swapped, err := a.Swap(context.Background(), prev, next)
					results[i] = result{cur, swapped, err}
				})
			}
			wg.Wait()
			var winners []arbiter.View
			for i, r := range results {
				if r.err != nil {
					t.Fatalf("from generation %d, Swap %d: %v", prev, i, r.err)
				}
				if r.swapped {
					winners = append(winners, r.cur)
				}
			}
			if len(winners) != 1 {
				t.Fatalf("from generation %d, %d of %d concurrent Swaps won: %v", prev, len(winners), n, winners)
			}
			for i, r := range results {
				if !r.cur.Equal(winners[0]) {
					t.Fatalf("from generation %d, Swap %d returned %v; the winner stored %v", prev, i, r.cur, winners[0])
				}
			}
			wantLoad(t, arbiters[0], winners[0])
		}
	})

	t.Run("SwapToAGenerationThatIsNotGreaterIsAnError", func(t *testing.T) {
		a := open(t, on("/skip", eps...))
		for _, tc := range []struct {
			prev int64
			next arbiter.View
		}{
			{0, view(0, "foo")},
			{1, view(1, "foo")},
			{2, view(1, "foo")},
			{-1, view(0, "foo")},
		} {
			_, swapped, err := a.Swap(context.Background(), tc.prev, tc.next)
			if err == nil || swapped || errors.Is(err, arbiter.ErrUnavailable) {
				t.Fatalf("Swap(%d, generation %d) = %v, %v; want an error that is not ErrUnavailable",
					tc.prev, tc.next.Generation, swapped, err)
			}
			t.Logf("Swap(%d, generation %d): %v", tc.prev, tc.next.Generation, err)
		}
		if v, ok := load(t, a); ok {
			t.Fatalf("Load after refused Swaps = %v, true", v)
		}
	})

	t.Run("AKeyThatHoldsNoViewIsAnError", func(t *testing.T) {
		cli := client(t, eps...)
		if _, err := cli.Put(context.Background(), "/garbage", "not json"); err != nil {
			t.Fatal(err)
		}
		a := open(t, on("/garbage", eps...))
		if _, _, err := a.Load(context.Background()); err == nil || !strings.Contains(err.Error(), "holds no view") {
			t.Fatalf("Load of a key holding %q: %v; want an error saying it holds no view", "not json", err)
		}
	})

	t.Run("CallsAfterCloseFail", func(t *testing.T) {
		a, err := tryOpen(t.TempDir(), on("/closed", eps...))
		if err != nil {
			t.Fatal(err)
		}
		load(t, a)
		if err := a.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if _, _, err := a.Load(context.Background()); err == nil || errors.Is(err, arbiter.ErrUnavailable) {
			t.Fatalf("Load after Close: %v; want an error that is not ErrUnavailable", err)
		}
	})
}

// client returns a plain etcd client of endpoints, closed when the test ends.
func client(t *testing.T, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// leader returns the index of the member that leads the cluster.
func leader(t *testing.T, c *dbserver.EtcdCluster) int {
	t.Helper()
	eps := c.Endpoints()
	cli := client(t, eps...)
	for i, ep := range eps {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := cli.Status(ctx, ep)
		cancel()
		if err == nil && st.Leader == st.Header.MemberId {
			return i
		}
	}
	t.Fatal("no member leads the cluster")
	return -1
}

// wantUnavailable runs call and requires it to fail with ErrUnavailable
// within bound; it returns how long the call took.
func wantUnavailable(t *testing.T, what string, bound time.Duration, call func() error) time.Duration {
	t.Helper()
	start := time.Now()
	err := call()
	took := time.Since(start)
	if !errors.Is(err, arbiter.ErrUnavailable) {
		t.Fatalf("%s: %v; want ErrUnavailable", what, err)
	}
	if took > bound {
		t.Fatalf("%s: ErrUnavailable after %v; want within %v", what, took, bound)
	}
	t.Logf("%s: ErrUnavailable after %v: %v", what, took, err)
	return took
}

func TestArbiterWorksWithOneMemberDownAndIsUnavailableWithTwo(t *testing.T) {
	c := dbserver.StartEtcd(t, 3)
	a := open(t, on("/tandem/view", c.Endpoints()...)) // request_timeout 2s
	swap(t, a, 0, view(1, "foo"))

	// The leader is the harder member to lose: the others must elect a
	// new one before anything commits.
	first := leader(t, c)
	if err := c.Member(first).Kill(); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, 10*time.Second, "Swap with the leader killed", func() error {
		_, _, err := a.Swap(context.Background(), 1, view(2, "bar"))
		return err
	})
	t.Logf("with the leader of three killed, a Swap succeeded %v later", took)
	wantLoad(t, a, view(2, "bar"))
	if cur, swapped := swap(t, a, 2, view(3, "foo")); !swapped {
		t.Fatalf("second Swap with one member down lost to %v", cur)
	}

	second := (first + 1) % 3
	if err := c.Member(second).Kill(); err != nil {
		t.Fatal(err)
	}
	const bound = 2*time.Second + time.Second // the request timeout, and slack
	wantUnavailable(t, "Load with two of three members killed", bound, func() error {
		_, _, err := a.Load(context.Background())
		return err
	})
	wantUnavailable(t, "Swap with two of three members killed", bound, func() error {
		_, _, err := a.Swap(context.Background(), 3, view(4, "bar"))
		return err
	})
	// A caller's shorter deadline bounds the call too.
	wantUnavailable(t, "Load with a 300ms deadline", 300*time.Millisecond+time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, _, err := a.Load(ctx)
		return err
	})

	c.Member(first).Restart(t)
	c.Member(second).Restart(t)
	took = eventually(t, 30*time.Second, "Load after restarting both", func() error {
		_, _, err := a.Load(context.Background())
		return err
	})
	t.Logf("with both members restarted, Load answered %v later", took)
	// A Swap that failed with ErrUnavailable may have committed later: the
	// stored view is generation 3 or 4.
	v, _ := load(t, a)
	if v.Generation != 3 && v.Generation != 4 {
		t.Fatalf("after recovery, Load = %v; want generation 3 or 4", v)
	}
	t.Logf("after recovery, the stored view is %v", v)
	if _, swapped := swap(t, a, v.Generation, view(v.Generation+1, "foo")); !swapped {
		t.Fatal("Swap after recovery lost")
	}
}

func TestArbiterOnAnIsolatedMemberIsUnavailableNotStale(t *testing.T) {
	c := dbserver.StartEtcd(t, 3)
	alone := open(t, on("/tandem/view", c.Member(0).Endpoint()))
	majority := open(t, on("/tandem/view", c.Member(1).Endpoint(), c.Member(2).Endpoint()))
	everyone := open(t, on("/tandem/view", c.Endpoints()...))
	swap(t, majority, 0, view(1, "foo"))
	wantLoad(t, alone, view(1, "foo"))

	c.Member(0).Isolate()
	took := eventually(t, 10*time.Second, "Swap on the majority side", func() error {
		_, _, err := majority.Swap(context.Background(), 1, view(2, "bar"))
		return err
	})
	t.Logf("the majority side swapped %v after the partition", took)

	// The isolated member still holds generation 1, and runs: a stale
	// read would return it.
	const bound = 2*time.Second + time.Second
	wantUnavailable(t, "Load through the isolated member only", bound, func() error {
		v, _, err := alone.Load(context.Background())
		if err == nil {
			return fmt.Errorf("Load returned %v", v)
		}
		return err
	})
	wantUnavailable(t, "Swap through the isolated member only", bound, func() error {
		_, _, err := alone.Swap(context.Background(), 1, view(2, "baz"))
		return err
	})
	// A client of every member gets its answers from the majority.
	for range 6 {
		wantLoad(t, everyone, view(2, "bar"))
	}

	c.Member(0).Rejoin()
	took = eventually(t, 10*time.Second, "Load through the rejoined member", func() error {
		v, _, err := alone.Load(context.Background())
		if err == nil && v.Generation != 2 {
			err = fmt.Errorf("Load returned %v", v)
		}
		return err
	})
	t.Logf("the rejoined member served generation 2 %v after Rejoin", took)
}

func TestArbiterAuthenticatesWithThePasswordFile(t *testing.T) {
	c := dbserver.StartEtcd(t, 1)
	eps := c.Endpoints()
	// etcd's auth: root (needed to turn it on), and a user tandem that may
	// use the view key only.
	cli := client(t, eps...)
	ctx := context.Background()
	for _, step := range []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, "view"); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, "view", "/tandem/view", "", clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, "tandem", "s3cret"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "tandem", "view"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}

	dir := t.TempDir()
	for name, password := range map[string]string{"right": "s3cret\n", "wrong": "guess\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(password), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	opener, _ := arbiter.Lookup("etcd")
	openAs := func(key, username, passwordFile string) arbiter.Arbiter {
		fields := on(key, eps...)
		if username != "" {
			fields["username"], fields["password_file"] = username, passwordFile
		}
		a, err := opener(arbiter.Options{Kind: "etcd", Fields: fields, Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		return a
	}

	a := openAs("/tandem/view", "tandem", "right") // relative to the config's directory
	swap(t, a, 0, view(1, "foo"))
	wantLoad(t, a, view(1, "foo"))

	// Refusals are errors of the config, not an unavailable arbiter.
	for _, tc := range []struct {
		what string
		a    arbiter.Arbiter
	}{
		{"a wrong password", openAs("/tandem/view", "tandem", "wrong")},
		{"no user", openAs("/tandem/view", "", "")},
		{"a key the user may not read", openAs("/other", "tandem", "right")},
	} {
		_, _, err := tc.a.Load(ctx)
		if err == nil || errors.Is(err, arbiter.ErrUnavailable) {
			t.Fatalf("Load with %s: %v; want an error that is not ErrUnavailable", tc.what, err)
		}
		if strings.Contains(err.Error(), "guess") || strings.Contains(err.Error(), "s3cret") {
			t.Fatalf("Load with %s: the error shows the password: %v", tc.what, err)
		}
		t.Logf("Load with %s: %v", tc.what, err)
	}
}

func TestOpenWaitsForNoNetwork(t *testing.T) {
	// Nothing listens on the port: open returns at once, and the first
	// call is ErrUnavailable within its time, with or without a user.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nobody := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte("pw"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"", "tandem"} {
		fields := on("/tandem/view", nobody)
		fields["request_timeout"] = "500ms"
		if user != "" {
			fields["username"], fields["password_file"] = user, "pw"
		}
		start := time.Now()
		a, err := tryOpen(dir, fields)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		if took := time.Since(start); took > 100*time.Millisecond {
			t.Fatalf("open with user %q took %v", user, took)
		}
		wantUnavailable(t, fmt.Sprintf("Load with user %q from an endpoint where nothing listens", user),
			500*time.Millisecond+time.Second, func() error {
				_, _, err := a.Load(context.Background())
				return err
			})
	}
}

func TestDescribeNamesTheEndpointsAndTheKey(t *testing.T) {
	a, err := tryOpen(t.TempDir(), map[string]any{"endpoints": []any{"127.0.0.1:2379", "127.0.0.1:2381"}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if got, want := a.Describe(), "etcd 127.0.0.1:2379,127.0.0.1:2381 key /tandem/view"; got != want {
		t.Fatalf("Describe() = %q; want %q", got, want)
	}
}

func TestBadOptionsNameTheField(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "empty"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ep := []any{"127.0.0.1:2379"}
	for _, tc := range []struct {
		name   string
		fields map[string]any
		want   string
	}{
		{"no endpoints", map[string]any{}, "arbiter.endpoints: want a list of host:port"},
		{"endpoints not a list", map[string]any{"endpoints": "127.0.0.1:2379"}, "arbiter.endpoints: want a list of host:port"},
		{"empty endpoints", map[string]any{"endpoints": []any{}}, "arbiter.endpoints: want a list of host:port"},
		{"an endpoint without a port", map[string]any{"endpoints": []any{"127.0.0.1"}}, "arbiter.endpoints: want a list of host:port"},
		{"an endpoint as a URL", map[string]any{"endpoints": []any{"http://127.0.0.1:2379"}}, "arbiter.endpoints: want a list of host:port"},
		{"an endpoint not a string", map[string]any{"endpoints": []any{2379}}, "arbiter.endpoints: want a list of host:port"},
		{"an empty key", map[string]any{"endpoints": ep, "key": ""}, "arbiter.key:"},
		{"a key not a string", map[string]any{"endpoints": ep, "key": 7}, "arbiter.key:"},
		{"a dial timeout without a unit", map[string]any{"endpoints": ep, "dial_timeout": 2}, "arbiter.dial_timeout:"},
		{"a negative request timeout", map[string]any{"endpoints": ep, "request_timeout": "-1s"}, "arbiter.request_timeout:"},
		{"a username without a password file", map[string]any{"endpoints": ep, "username": "tandem"}, "arbiter.password_file:"},
		{"a password file without a username", map[string]any{"endpoints": ep, "password_file": "pw"}, "arbiter.username:"},
		{"a missing password file", map[string]any{"endpoints": ep, "username": "tandem", "password_file": "nope"}, "arbiter.password_file:"},
		{"an empty password file", map[string]any{"endpoints": ep, "username": "tandem", "password_file": "empty"}, "arbiter.password_file:"},
		{"a password in the config", map[string]any{"endpoints": ep, "username": "tandem", "password": "x"}, "arbiter.password: unknown field"},
		{"a misspelt field", map[string]any{"endpoint": ep}, "arbiter.endpoint: unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := tryOpen(dir, tc.fields)
			if err == nil {
				a.Close()
				t.Fatalf("open(%v) succeeded; want an error with %q", tc.fields, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("open(%v): %v; want an error with %q", tc.fields, err, tc.want)
			}
		})
	}
}
