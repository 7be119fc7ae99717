// Package etcd is the arbiter of kind "etcd": it keeps a cluster's view in
// one key of an etcd cluster, for application processes on several
// machines. Import it for its side effect:
//
//	import _ "github.com/tandemdb/tandem/arbiter/etcd"
//
// and configure it under the config's arbiter field:
//
//	arbiter:
//	  kind: etcd
//	  endpoints: [10.0.0.1:2379, 10.0.0.2:2379, 10.0.0.3:2379]
//	  key: /tandem/view             # the default
//	  dial_timeout: 2s              # the default
//	  request_timeout: 5s           # the default: the longest a call waits
//	  username: tandem              # with password_file, when etcd's auth is on
//	  password_file: etcd.password  # relative to the config's directory
//
// The key holds the view as JSON. Swap is a compare-and-swap in one etcd
// transaction on the key's revision, so of any number of processes swapping
// from the same generation exactly one wins. Every read is linearizable: a
// member cut off from the others' quorum answers no read rather than a
// stale view. A call that gets no answer from a quorum within its time
// returns an error wrapping [arbiter.ErrUnavailable].
package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"

	"github.com/tandemdb/tandem/arbiter"
)

func init() { arbiter.Register("etcd", open) }

// The defaults of the optional fields.
const (
	defaultKey            = "/tandem/view"
	defaultDialTimeout    = 2 * time.Second
	defaultRequestTimeout = 5 * time.Second
)

// fields lists the fields the etcd arbiter takes, for the error on another.
var fields = []string{"endpoints", "key", "dial_timeout", "request_timeout", "username", "password_file"}

// config is the arbiter's validated fields.
type config struct {
	endpoints      []string
	key            string
	dialTimeout    time.Duration
	requestTimeout time.Duration
	username       string
	password       string // read from password_file; never logged
}

// etcdArbiter keeps the view in cfg.key. Its client connects on the first
// call, so that open never waits on the network (with a username, the
// client authenticates as it connects).
type etcdArbiter struct {
	cfg config

	mu      sync.Mutex
	client  *clientv3.Client
	dialing *dialing // the connection under way, if any
	closed  bool
}

// dialing is one attempt to connect the client, which the calls that need
// it wait for as long as their context lets them.
type dialing struct {
	done   chan struct{} // closed when client or err is set
	client *clientv3.Client
	err    error
}

func open(opts arbiter.Options) (arbiter.Arbiter, error) {
	cfg, err := parse(opts)
	if err != nil {
		return nil, err
	}
	return &etcdArbiter{cfg: cfg}, nil
}

// parse validates opts.Fields, as YAML decoded them.
func parse(opts arbiter.Options) (config, error) {
	cfg := config{key: defaultKey, dialTimeout: defaultDialTimeout, requestTimeout: defaultRequestTimeout}
	for _, name := range slices.Sorted(maps.Keys(opts.Fields)) {
		if !slices.Contains(fields, name) {
			return config{}, fmt.Errorf("arbiter.%s: unknown field (the etcd arbiter takes %s)", name, strings.Join(fields, ", "))
		}
	}

	var err error
	if cfg.endpoints, err = endpoints(opts.Fields["endpoints"]); err != nil {
		return config{}, fmt.Errorf("arbiter.endpoints: want a list of host:port, %w", err)
	}
	if v, ok := opts.Fields["key"]; ok {
		if cfg.key, ok = v.(string); !ok || cfg.key == "" {
			return config{}, fmt.Errorf("arbiter.key: want a key such as %q, got %v", defaultKey, v)
		}
	}
	for _, f := range []struct {
		name string
		d    *time.Duration
	}{{"dial_timeout", &cfg.dialTimeout}, {"request_timeout", &cfg.requestTimeout}} {
		if v, ok := opts.Fields[f.name]; ok {
			if *f.d, err = duration(v); err != nil {
				return config{}, fmt.Errorf("arbiter.%s: %w", f.name, err)
			}
		}
	}

	username, hasUser := opts.Fields["username"]
	passwordFile, hasFile := opts.Fields["password_file"]
	switch {
	case hasUser && !hasFile:
		return config{}, errors.New("arbiter.password_file: required with username (the password is read from it, never written in the config)")
	case hasFile && !hasUser:
		return config{}, errors.New("arbiter.username: required with password_file")
	case hasUser:
		if cfg.username, _ = username.(string); cfg.username == "" {
			return config{}, fmt.Errorf("arbiter.username: want a user name, got %v", username)
		}
		path, _ := passwordFile.(string)
		if path == "" {
			return config{}, fmt.Errorf("arbiter.password_file: want a file name, got %v", passwordFile)
		}
		if !filepath.IsAbs(path) {
			path = filepath.Join(opts.Dir, path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return config{}, fmt.Errorf("arbiter.password_file: %w", err)
		}
		// A file written by echo or an editor ends with a newline that is
		// not part of the password.
		if cfg.password = strings.TrimRight(string(b), "\r\n"); cfg.password == "" {
			return config{}, fmt.Errorf("arbiter.password_file: %s is empty", path)
		}
	}
	return cfg, nil
}

// endpoints validates the endpoints field: a non-empty list of host:port.
// Its errors say what it got instead.
func endpoints(v any) ([]string, error) {
	var list []any
	switch v := v.(type) {
	case nil:
		return nil, errors.New("got none")
	case []any:
		list = v
	case []string:
		for _, s := range v {
			list = append(list, s)
		}
	default:
		return nil, fmt.Errorf("got %#v", v)
	}
	if len(list) == 0 {
		return nil, errors.New("got an empty list")
	}
	var eps []string
	for _, e := range list {
		s, _ := e.(string)
		host, port, err := net.SplitHostPort(s)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("got %#v in the list", e)
		}
		eps = append(eps, s)
	}
	return eps, nil
}

// duration validates a positive duration written as "2s" or "500ms".
func duration(v any) (time.Duration, error) {
	s, _ := v.(string)
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("want a duration such as \"2s\", got %v", v)
	}
	return d, nil
}

// Describe says where the view lives: "etcd 127.0.0.1:2379,127.0.0.1:2381
// key /tandem/view".
func (a *etcdArbiter) Describe() string {
	return "etcd " + strings.Join(a.cfg.endpoints, ",") + " key " + a.cfg.key
}

// Load returns the view stored in the key, read linearizably.
func (a *etcdArbiter) Load(ctx context.Context) (arbiter.View, bool, error) {
	ctx, cancel := a.bound(ctx)
	defer cancel()
	cli, err := a.connect(ctx)
	if err != nil {
		return arbiter.View{}, false, a.fail("connect to", err)
	}
	kv, err := a.read(ctx, cli)
	if err != nil {
		return arbiter.View{}, false, a.fail("load the view from", err)
	}
	if kv == nil {
		return arbiter.View{}, false, nil
	}
	v, err := a.decode(kv.Value)
	return v, err == nil, err
}

// read returns the key's value and revisions, or nil when it does not
// exist.
func (a *etcdArbiter) read(ctx context.Context, cli *clientv3.Client) (*mvccpb.KeyValue, error) {
	var resp *clientv3.GetResponse
	err := retry(ctx, func() (err error) {
		resp, err = cli.Get(ctx, a.cfg.key)
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	return resp.Kvs[0], nil
}

// Swap stores next in one transaction that succeeds only if the key still
// has the revision at which it held generation prev (or, for prev 0, does
// not exist). An error leaves it unknown whether next was stored (the
// transaction may have committed after the call gave up): Load tells.
func (a *etcdArbiter) Swap(ctx context.Context, prev int64, next arbiter.View) (arbiter.View, bool, error) {
	if prev < 0 {
		return arbiter.View{}, false, fmt.Errorf("swap the view in %s from generation %d: generations start at 0 (none stored)", a.Describe(), prev)
	}
	if next.Generation <= prev {
		return arbiter.View{}, false, fmt.Errorf("swap the view in %s from generation %d: the next view has generation %d, want a greater one",
			a.Describe(), prev, next.Generation)
	}
	value, err := json.Marshal(next)
	if err != nil {
		return arbiter.View{}, false, fmt.Errorf("swap the view in %s: %w", a.Describe(), err)
	}
	ctx, cancel := a.bound(ctx)
	defer cancel()
	cli, err := a.connect(ctx)
	if err != nil {
		return arbiter.View{}, false, a.fail("connect to", err)
	}

	// The revision the key must still have: 0 while it does not exist.
	var rev int64
	if prev > 0 {
		kv, err := a.read(ctx, cli)
		if err != nil {
			return arbiter.View{}, false, a.fail("swap the view in", err)
		}
		if kv == nil {
			return arbiter.View{}, false, nil
		}
		cur, err := a.decode(kv.Value)
		if err != nil || cur.Generation != prev {
			return cur, false, err
		}
		rev = kv.ModRevision
	}
	for {
		cmp := clientv3.Compare(clientv3.ModRevision(a.cfg.key), "=", rev)
		if rev == 0 {
			cmp = clientv3.Compare(clientv3.CreateRevision(a.cfg.key), "=", 0)
		}
		var resp *clientv3.TxnResponse
		err := retry(ctx, func() (err error) {
			resp, err = cli.Txn(ctx).If(cmp).
				Then(clientv3.OpPut(a.cfg.key, string(value))).
				Else(clientv3.OpGet(a.cfg.key)).
				Commit()
			return err
		})
		if err != nil {
			return arbiter.View{}, false, a.fail("swap the view in", err)
		}
		if resp.Succeeded {
			return next, true, nil
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return arbiter.View{}, false, nil // deleted since it was read
		}
		cur, err := a.decode(kvs[0].Value)
		if err != nil || prev == 0 || cur.Generation != prev {
			return cur, false, err
		}
		// Written again with the same generation (not by an arbiter,
		// whose writes increment it): swap from that.
		rev = kvs[0].ModRevision
	}
}

// Close closes the client; later calls fail.
func (a *etcdArbiter) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	if a.client == nil {
		return nil
	}
	err := a.client.Close()
	a.client = nil
	if errors.Is(err, context.Canceled) {
		err = nil // the client cancels its own context as it closes
	}
	return err
}

// connect returns the client, connecting it on the first call (and after a
// failed one). It waits for the connection no longer than ctx lets it;
// the attempt goes on, for the next call, up to the dial timeout.
func (a *etcdArbiter) connect(ctx context.Context) (*clientv3.Client, error) {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil, errClosed
	}
	if a.client != nil {
		a.mu.Unlock()
		return a.client, nil
	}
	d := a.dialing
	if d == nil {
		d = &dialing{done: make(chan struct{})}
		a.dialing = d
		go a.dial(d)
	}
	a.mu.Unlock()
	select {
	case <-d.done:
		return d.client, d.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// dial makes the client: without a username it connects in the
// background, with one it authenticates first (within the dial timeout).
func (a *etcdArbiter) dial(d *dialing) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   a.cfg.endpoints,
		DialTimeout: a.cfg.dialTimeout,
		Username:    a.cfg.username,
		Password:    a.cfg.password,
		// Failures reach the caller as errors; the client's own logging
		// of its retries would only repeat them.
		Logger: zap.NewNop(),
	})
	a.mu.Lock()
	defer a.mu.Unlock()
	a.dialing = nil
	if err == nil && a.closed {
		cli.Close()
		cli, err = nil, errClosed
	}
	a.client, d.client, d.err = cli, cli, err
	close(d.done)
}

// bound bounds a call by the request timeout, and makes a member without a
// leader refuse it at once (the client then tries another member) rather
// than wait for one.
func (a *etcdArbiter) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.requestTimeout)
	return clientv3.WithRequireLeader(ctx), cancel
}

// retry runs call until it succeeds, fails otherwise than for want of a
// leader, or ctx ends. A member refuses a request for want of a leader
// before it proposes it, so sending it again is safe: a leader is likely
// being elected (the client retries reads too, but gives up after a number
// of tries, not a time). When the quorum is lost, ctx ends the wait.
func retry(ctx context.Context, call func() error) error {
	for refused := false; ; refused = true {
		err := call()
		if !errors.Is(err, rpctypes.ErrNoLeader) {
			if err != nil && refused && ctx.Err() != nil {
				err = fmt.Errorf("%w, waiting for a leader", err)
			}
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// decode reads a view stored in the key.
func (a *etcdArbiter) decode(value []byte) (arbiter.View, error) {
	var v arbiter.View
	if err := json.Unmarshal(value, &v); err != nil {
		return arbiter.View{}, fmt.Errorf("%s holds no view: %w", a.Describe(), err)
	}
	return v, nil
}

// errClosed is the error of a call after Close.
var errClosed = errors.New("the arbiter is closed")

// fail wraps the error of an etcd call, what (a verb and its preposition)
// saying what failed. etcd's refusals (authentication,
// permission, a malformed request) are errors of the config; anything else
// means no quorum answered in time: arbiter.ErrUnavailable.
func (a *etcdArbiter) fail(what string, err error) error {
	if errors.Is(err, errClosed) {
		return fmt.Errorf("%s %s: %w", what, a.Describe(), err)
	}
	var refused rpctypes.EtcdError
	if errors.As(err, &refused) {
		switch refused.Code() {
		case codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated, codes.FailedPrecondition:
			return fmt.Errorf("%s %s: %w", what, a.Describe(), err)
		}
	}
	return fmt.Errorf("%s %s: %w: %w", what, a.Describe(), arbiter.ErrUnavailable, err)
}
